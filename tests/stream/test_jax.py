"""Stream.jax (device prefetch, sharding) and the grain source with grain's own loader."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nishard import stream
from tests.stream.conftest import decoded

jax = pytest.importorskip("jax")
# JAX's threads run in this process once a stream used it; the DataLoader workers forked
# here never use JAX, so its fork warning does not apply to them.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
grain = pytest.importorskip("grain.python")


def test_jax_batches_equal_the_torch_batches(shards):
    composed = (stream.open(shards, "train").keys("bold", "connectivity").batch(5)
                .shuffle(seed=4).epoch(2).fields(meta=["diagnosis"]))  # fmt: skip
    with_torch = list(DataLoader(composed.torch(), batch_size=None, num_workers=2))
    with_jax = list(composed.jax())
    assert len(with_jax) == len(with_torch) == 3
    for j, t in zip(with_jax, with_torch, strict=True):
        assert j["__key__"] == t["__key__"] and j["diagnosis"] == t["diagnosis"]
        for name in ("bold", "connectivity"):
            assert isinstance(j[name], jax.Array) and j[name].dtype == np.float32
            np.testing.assert_array_equal(np.asarray(j[name]), t[name].numpy())


def test_jax_epochs_and_early_exit(shards):
    data = stream.open(shards, "train").keys().batch(4).shuffle(seed=0).jax(prefetch=1)
    first = [b["__key__"] for b in data]
    data.set_epoch(1)
    second = [b["__key__"] for b in data]
    assert sorted(k for b in first for k in b) == sorted(k for b in second for k in b)
    assert first != second
    for _ in stream.open(shards, "train").keys("bold").batch(1).jax(prefetch=1):
        break  # leaving early stops the background thread without hanging


def test_jax_shards_batches_over_devices(shards):
    # Two CPU devices need the flag before JAX starts: a fresh interpreter.
    code = textwrap.dedent(f"""
        import jax, numpy as np
        from nishard import stream
        devices = jax.devices()
        assert len(devices) == 2, devices
        bold = stream.open({str(shards)!r}, "train").keys("bold")
        data = bold.batch(4).jax(devices=devices)
        host = list(data.host_batches())
        for batch, expected in zip(data, host, strict=True):
            assert len(batch["bold"].sharding.device_set) == 2
            assert batch["bold"].addressable_shards[0].data.shape == (2, 120, 7)
            np.testing.assert_array_equal(np.asarray(batch["bold"]), expected["bold"])
        try:
            bold.batch(3).jax(devices=devices)
        except ValueError as err:
            assert "multiple of the 2 devices" in str(err)
        else:
            raise AssertionError("batch size 3 over 2 devices")
        print("ok")
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_grain_loader_reads_the_grain_source(shards):
    expected = decoded(shards, "train")
    source = stream.open(shards, "train").keys("bold", "connectivity").grain()
    assert isinstance(source, grain.RandomAccessDataSource) and len(source) == 12
    sampler = grain.IndexSampler(len(source), shard_options=grain.NoSharding(), shuffle=True,
                                 num_epochs=1, seed=0)  # fmt: skip
    loader = grain.DataLoader(data_source=source, sampler=sampler,
                              operations=[grain.Batch(4, drop_remainder=False)])  # fmt: skip
    batches = list(loader)
    keys = [str(k) for b in batches for k in b["__key__"]]
    assert sorted(keys) == sorted(expected) and keys != list(expected)
    for batch in batches:
        assert batch["bold"].shape[1:] == (120, 7) and batch["connectivity"].dtype == np.float32
        for row, key in enumerate(batch["__key__"]):
            np.testing.assert_array_equal(batch["bold"][row], expected[str(key)].arrays["bold"])
            np.testing.assert_array_equal(
                batch["connectivity"][row], expected[str(key)].arrays["connectivity"]
            )


def test_grain_source_in_grain_worker_processes(shards):
    from absl import flags

    # grain 0.2.18 reads an absl flag in worker mode; scripts without absl.app must mark
    # flags parsed (google/grain#1355, fixed after 0.2.18).
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    source = stream.open(shards, "test").keys("regions").fields(meta=["age"]).grain()
    sampler = grain.IndexSampler(len(source), shard_options=grain.NoSharding(), shuffle=False,
                                 num_epochs=1, seed=0)  # fmt: skip
    loader = grain.DataLoader(data_source=source, sampler=sampler, worker_count=1,
                              operations=[grain.Batch(2)])  # fmt: skip
    expected = decoded(shards, "test")
    batches = list(loader)
    assert [str(k) for b in batches for k in b["__key__"]] == list(expected)
    ages = [float(a) for b in batches for a in b["age"]]
    assert ages == [s.meta["age"] for s in expected.values()]
    assert "GrainSource(" in repr(source) and "samples=4" in repr(source)


def test_jax_and_torch_agree_on_normalisation(shards):
    normalized = stream.open(shards, "test").keys("bold").batch(4).normalize()
    t = next(iter(DataLoader(normalized.torch(), batch_size=None)))
    j = next(iter(normalized.jax()))
    np.testing.assert_array_equal(np.asarray(j["bold"]), t["bold"].numpy())
    assert torch.is_tensor(t["bold"])
