#!/usr/bin/env bash
# Issue [5/6] item 5 on the lent GPU machine, in one call of the device tool (which sends
# the working tree; nothing can be fetched there, and its python3 has JAX with CUDA):
#
#   make device-wheels          # here: the wheels its image lacks, into .whl/ (ignored)
#   device run: command "bash benchmarks/device.sh", carry [".whl"], timeout_s 540
#
# It installs the wheels, then runs benchmarks/jax_device.py (the clean step on the GPU
# against the same JAX code on its CPU, with and without the copies; a JAX streaming
# epoch) and benchmarks/clean.py --backend both --skip-nilearn (a whole record, read to
# cleaned array, on one core beside the GPU). Logs and the JSON lines land in $OUT. On
# this project's 2-core machine it takes 14 minutes (before --repeats were cut for the
# device's 15 minutes): JAX on the CPU, which the GPU machine's 16 cores shorten, and
# clean.py's one-core timings, which they do not.
# Elsewhere, PYTHON=.venv/bin/python bash benchmarks/device.sh checks the script on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
out=${OUT:-/tmp/nishard-device}
mkdir -p "$out"
if [ -d .whl ] && [ -z "${PYTHON:-}" ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PWD/src:/tmp/site"
fi
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"
  "$python" -c 'import jax; print("JAX", jax.__version__, jax.devices())'; } | tee "$out/gpu.txt"
# The goal's figures first: what a timed-out call leaves in $OUT is what came before.
date
"$python" benchmarks/jax_device.py --out /tmp/nishard-bench-jax --repeats 3 2>&1 \
    | tee "$out/jax_device.log"
date
"$python" benchmarks/clean.py --backend both --skip-nilearn --repeats 2 \
    --cache /tmp/nishard-bench-clean 2>&1 | tee "$out/clean.log"
date
