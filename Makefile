# The two commands of the README: `make demo` and `make test`. Both create .venv when it is
# missing and install nishard with every dependency pinned by constraints.txt: `make demo`
# what the demo needs (nishard and PyTorch), `make test` the test extra besides (JAX,
# TensorFlow, DataLad and git-annex, pybids, SeaweedFS, ...). Each has its own stamp.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup setup-test demo test lint format clean git-annex device-wheels

setup: $(DEMO_STAMP)
setup-test: $(TEST_STAMP)

$(DEMO_STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "nishard needs Python 3.11+: set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[torch]" 2>&1 | grep -v "is ignored: it is neither" || true
	@$(BIN)/python -c 'import nishard, torch, webdataset' && touch $@

# The test set-up holds the demo's, so it stamps both.
$(TEST_STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "nishard needs Python 3.11+: set PYTHON=python3.11")'
	@command -v git-annex >/dev/null || $(MAKE) --no-print-directory git-annex
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[torch,jax,test]" 2>&1 | grep -v "is ignored: it is neither" || true
	@$(BIN)/python -c 'import nishard, torch, jax, webdataset, pytest' && touch $@ $(DEMO_STAMP)

# DataLad sources need git-annex, a Debian package: installed for the tests only (a DataLad
# source without it is one error naming it); the DataLad tests skip without it.
git-annex:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq git-annex >/dev/null; \
	elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq git-annex >/dev/null; \
	else echo "note: install git-annex (apt-get install git-annex) for DataLad sources"; fi

demo: setup
	$(BIN)/nishard demo

test: setup-test lint
	$(BIN)/python -m pytest

lint: setup-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff format --check src tests benchmarks

format: setup-test
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# The wheels (CPython 3.12, Linux x86-64) that the lent GPU machine's image lacks, at the
# versions of constraints.txt, into .whl/ for benchmarks/device.sh (which says how to run it).
DEVICE_WHEELS = nibabel nilearn webdataset braceexpand isal crc32c
device-wheels:
	rm -rf .whl && $(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: \
	  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
	  $$(for name in $(DEVICE_WHEELS); do grep -i "^$$name==" constraints.txt; done) \
	  2>&1 | grep -v "is ignored: it is neither" || true
	@ls .whl

clean:
	rm -rf $(VENV) nishard-demo .pytest_cache .whl
