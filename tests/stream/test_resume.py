"""Mid-epoch resume (issue [4/6], item 3): a job stopped after k batches and restarted
from its state yields exactly the batches it had not yet yielded, in the same order, with
DataLoader workers and ranks, for PyTorch and JAX."""

from __future__ import annotations

import pickle

import pytest
import torch

from nishard import stream

pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")


def _stream(shards, rank=0, world=1, seed=3):
    return (stream.open(shards, "train").keys("bold").shuffle(seed=seed, buffer=4)
            .shard(rank, world).batch(2))  # fmt: skip


def _keys(batches) -> list[list[str]]:
    return [list(b["__key__"]) for b in batches]


def _stopped_after(loader, k: int) -> tuple[list, dict]:
    """Take k batches of an epoch, then 'crash': the batches and the saved state."""
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == k:
            break
    return batches, pickle.loads(pickle.dumps(loader.state_dict()))  # as a checkpoint


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("world", [1, 2])
def test_a_resumed_epoch_continues_sample_for_sample(shards, workers, world):
    for rank in range(world):
        whole = _stream(shards, rank, world).torch()
        whole.set_epoch(1)
        expected = list(whole.loader(num_workers=workers))
        assert len(expected) >= 3
        first = _stream(shards, rank, world).torch()
        first.set_epoch(1)
        head, state = _stopped_after(first.loader(num_workers=workers), 2)
        assert state == {"epoch": 1, "batch": 2}  # what the loop took, not what was read ahead
        # A new process: a stream compiled the same way, the state loaded.
        again = _stream(shards, rank, world).torch().loader(num_workers=workers)
        again.load_state_dict(state)
        tail = list(again)
        assert _keys(head + tail) == _keys(expected)
        for got, want in zip(head + tail, expected, strict=True):
            assert torch.equal(got["bold"], want["bold"])
        assert again.state_dict() == {"epoch": 1, "batch": len(expected)}


def test_the_next_epoch_starts_from_its_beginning(shards):
    dataset = _stream(shards).torch()
    loader = dataset.loader(num_workers=2)
    loader.load_state_dict({"epoch": 0, "batch": 1})
    rest = list(loader)
    dataset.set_epoch(1)
    assert loader.state_dict() == {"epoch": 1, "batch": 0}
    fresh = _stream(shards).torch()
    fresh.set_epoch(1)
    assert _keys(list(loader)) == _keys(list(fresh.loader())) and len(rest) == len(dataset) - 1
    # The resumed start was used once: iterating epoch 0 again gives all of it.
    loader.dataset.set_epoch(0)
    assert len(list(loader)) == len(dataset)


def test_a_bad_state_is_refused_by_name(shards):
    dataset = _stream(shards).torch()
    for bad in ({"epoch": 0}, {"epoch": -1, "batch": 0}, {"epoch": 0, "batch": "2"},
                {"epoch": 0, "batch": len(dataset) + 1}):  # fmt: skip
        with pytest.raises(ValueError, match=r"epoch|batch"):
            dataset.load_state_dict(bad)
    with pytest.raises(ValueError, match="batch_size must be None"):
        dataset.loader(batch_size=4)


def test_a_jax_stream_resumes_where_the_caller_stopped(shards):
    import numpy as np

    expected = list(_stream(shards).jax(prefetch=3))
    first = _stream(shards).jax(prefetch=3)
    head = []
    for batch in first:
        head.append(batch)
        if len(head) == 2:
            break
    state = first.state_dict()
    assert state == {"epoch": 0, "batch": 2}  # not the batches prefetched to the device
    again = _stream(shards).jax(prefetch=3)
    again.load_state_dict(state)
    tail = list(again)
    assert _keys(head + tail) == _keys(expected)
    for got, want in zip(head + tail, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(got["bold"]), np.asarray(want["bold"]))


def test_a_grain_loader_over_the_stream_restores_its_own_checkpoint(shards):
    """The JAX/grain path: grain's iterator state (get_state/set_state) is the checkpoint;
    the source, random access by sample number, gives the same samples back."""
    grain = pytest.importorskip("grain.python")
    source = stream.open(shards, "train").keys("bold").grain()

    def loader():
        sampler = grain.IndexSampler(len(source), shard_options=grain.NoSharding(),
                                     shuffle=True, seed=5, num_epochs=1)  # fmt: skip
        return grain.DataLoader(data_source=source, sampler=sampler,
                                operations=[grain.Batch(2, drop_remainder=False)])  # fmt: skip

    expected = [list(b["__key__"]) for b in loader()]
    first = iter(loader())
    head = [list(next(first)["__key__"]) for _ in range(2)]
    state = first.get_state()
    again = iter(loader())
    again.set_state(state)
    tail = [list(b["__key__"]) for b in again]
    assert head + tail == expected and len(tail) == len(expected) - 2


def test_the_state_does_not_depend_on_the_number_of_workers(shards):
    whole = list(_stream(shards).torch().loader(num_workers=0))
    head, state = _stopped_after(_stream(shards).torch().loader(num_workers=2), 3)
    again = _stream(shards).torch().loader(num_workers=1)  # another machine, other workers
    again.load_state_dict(state)
    assert _keys(head + list(again)) == _keys(whole)


def test_a_missing_s3_client_is_one_clear_error(monkeypatch):
    import builtins

    from nishard.archives import storage as storage_module
    from nishard.errors import StorageError

    real_import = builtins.__import__

    def no_boto3(name, *args, **kwargs):
        if name == "boto3":
            raise ImportError("No module named 'boto3'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_boto3)
    monkeypatch.setattr(storage_module, "_S3_CLIENTS", {})
    with pytest.raises(StorageError, match=r"need boto3: pip install 'nishard\[s3\]'"):
        storage_module.storage_for("s3://bucket/shards").stat("manifest.json")
