"""Golden reading orders: the sample keys of every batch, recorded once and kept.

The shards are made here from the archive formats alone (no pipeline, no synthetic
dataset), so that the recorded orders change only when the order itself does: a
``train`` split of 18 samples in shards of 4, 4, 4, 4 and 2 (``s00`` ... ``s17``) and a
``test`` split of 5 (``t00`` ... ``t04``), in tar and TFRecord.

``golden_orders.json`` holds, for each case, the arguments of the stream and the keys
of each batch (or sample) of each epoch read. The cases cover the seed, the epoch, the
shuffle buffer, the rank among a world (both remainders), DataLoader workers, the batch
size, ``drop_last`` and the epoch length, through every reader that takes an order.

To record them again (only when an order is meant to change, and say so in the commit):
``python -m tests.stream.test_golden_orders --write``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from nishard.archives import TFRecord, WebDataset, by_count
from nishard.archives.manifest import KeyStats, build_manifest, write_manifest
from nishard.archives.shards import ShardWriter

# The DataLoader workers forked here never use JAX, whose threads an earlier test of the
# session may have started; its fork warning does not apply to them.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

GOLDEN = Path(__file__).with_name("golden_orders.json")
SPLITS = {"train": [f"s{i:02d}" for i in range(18)], "test": [f"t{i:02d}" for i in range(5)]}


def make_shards(folder: Path) -> Path:
    """The golden shard folder: tiny arrays, the sample's number in its metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    keys, shards = KeyStats(), []
    for fmt in (WebDataset(), TFRecord()):
        for split, names in SPLITS.items():
            writer = ShardWriter(folder, split, fmt, by_count(4))
            for number, name in enumerate(names):
                products = {"x": np.full((2, 3), number, np.float32),
                            "label": np.array(number % 3, np.int64)}  # fmt: skip
                keys.update(products)
                writer.add(name, fmt.encode(name, products, {"number": number}))
            shards += writer.close()
    n = sum(len(names) for names in SPLITS.values())
    manifest = build_manifest(spec={}, shards=shards, keys=keys, inputs={}, quarantine=[],
                              dropped=[], n_records=n)  # fmt: skip
    write_manifest(folder, manifest)
    return folder


# -- the cases -------------------------------------------------------------------------------
# Each: the reader, its arguments (JSON), the epochs read, and for torch the DataLoader
# workers. Arguments are today's keywords; the composed API gets the same from them.

ORDER = {"shuffle": True, "seed": 0}
CASES: dict[str, dict] = {
    "torch_manifest_order": {"api": "torch", "args": {}, "workers": 0},
    "torch_default_buffer_batch4": {
        "api": "torch",
        "args": {**ORDER, "batch_size": 4},
        "workers": 0,
        "epochs": [0, 1],
    },
    "torch_buffer4_drop_last_workers2": {
        "api": "torch",
        "workers": 2,
        "epochs": [0, 1, 2],
        "args": {**ORDER, "buffer": 4, "batch_size": 4, "drop_last": True},
    },
    "torch_shards_only_seed3_workers1": {
        "api": "torch",
        "workers": 1,
        "args": {"shuffle": True, "seed": 3, "buffer": 1, "batch_size": 5},
    },
    "torch_first_epoch_2": {
        "api": "torch",
        "workers": 0,
        "args": {"shuffle": True, "seed": 7, "buffer": 6, "epoch": 2, "batch_size": 3},
    },
    "torch_test_split_samples": {
        "api": "torch",
        "workers": 2,
        "args": {"split": "test", "shuffle": True, "seed": 1, "buffer": 2},
    },
    "torch_tfrecord": {
        "api": "torch",
        "workers": 0,
        "args": {"format": "tfrecord", **ORDER, "buffer": 5, "batch_size": 4},
    },
    "torch_length_7": {
        "api": "torch",
        "workers": 2,
        "epochs": [0, 1, 2, 3],
        "args": {"shuffle": True, "seed": 5, "buffer": 4, "length": 7, "batch_size": 3},
    },
    "torch_length_40_unshuffled": {
        "api": "torch",
        "workers": 0,
        "epochs": [0, 1],
        "args": {"length": 40, "batch_size": 8, "drop_last": True},
    },
}
for _rank in range(3):
    CASES[f"torch_wrap_rank{_rank}_of3_workers2"] = {
        "api": "torch", "workers": 2, "epochs": [0, 1],
        "args": {"shuffle": True, "seed": 1, "buffer": 8, "rank": _rank, "world_size": 3,
                 "batch_size": 2}}  # fmt: skip
for _rank in range(4):
    CASES[f"torch_drop_rank{_rank}_of4"] = {
        "api": "torch", "workers": 0,
        "args": {"shuffle": True, "seed": 2, "buffer": 3, "rank": _rank, "world_size": 4,
                 "remainder": "drop", "batch_size": 3}}  # fmt: skip
for _rank in range(5):
    CASES[f"torch_wrap_rank{_rank}_of5_unshuffled"] = {
        "api": "torch",
        "workers": 1,
        "args": {"rank": _rank, "world_size": 5, "batch_size": 2},
    }
CASES.update({
    "jax_batch4_epochs": {"api": "jax", "epochs": [0, 1],
                          "args": {**ORDER, "buffer": 4, "batch_size": 4}},
    "jax_rank1_of2_drop_last": {"api": "jax",
                                "args": {"shuffle": True, "seed": 9, "rank": 1, "world_size": 2,
                                         "batch_size": 4, "drop_last": True}},
    "jax_length_5_samples": {"api": "jax", "epochs": [0, 3],
                             "args": {"shuffle": True, "seed": 4, "length": 5}},
    "arrays_every_split": {"api": "arrays", "args": {"split": None}},
    "arrays_every_split_shuffled": {"api": "arrays", "args": {"split": None, **ORDER}},
    "arrays_train_seed3_epochs": {"api": "arrays", "epochs": [0, 1, 2],
                                  "args": {"split": "train", "shuffle": True, "seed": 3}},
    "arrays_test_tfrecord": {"api": "arrays",
                             "args": {"split": "test", "format": "tfrecord", **ORDER}},
    "map_dataset_train": {"api": "MapDataset", "args": {}},
    "grain_source_test": {"api": "GrainSource", "args": {"split": "test"}},
})  # fmt: skip


def _keys(batch) -> list[str]:
    """A batch's keys (one sample's: a list of one)."""
    keys = batch["__key__"]
    return [str(keys)] if isinstance(keys, str) else [str(k) for k in keys]


def legacy_orders(folder: Path, case: dict) -> dict[str, list[list[str]]]:
    """The keys of each batch of each epoch, read with today's factories."""
    from nishard import stream

    args = dict(case["args"])
    epochs = case.get("epochs", [args.get("epoch", 0)])
    api = case["api"]
    out = {}
    if api == "torch":
        from torch.utils.data import DataLoader

        split = args.pop("split", "train")
        dataset = stream.torch(folder, [], split, meta=False, **args)
        for epoch in epochs:
            if epoch != dataset.epoch:  # the first epoch is the one asked for
                dataset.set_epoch(epoch)
            loader = DataLoader(dataset, batch_size=None, num_workers=case["workers"])
            out[str(epoch)] = [_keys(b) for b in loader]
            assert len(out[str(epoch)]) == len(dataset)
    elif api == "jax":
        split = args.pop("split", "train")
        data = stream.jax(folder, [], split, meta=False, **args)
        for epoch in epochs:
            if epoch != data.epoch:
                data.set_epoch(epoch)
            out[str(epoch)] = [_keys(b) for b in data]
    elif api == "arrays":
        for epoch in epochs:
            out[str(epoch)] = [_keys(s) for s in stream.arrays(folder, [], epoch=epoch, **args)]
    else:
        source = getattr(stream, api)(folder, [], args.get("split"))
        out["0"] = [_keys(source[i]) for i in range(len(source))]
    return out


def composed(folder: Path, case: dict, shuffle_calls: str = ""):
    """The case's stream through ``ns.stream.open`` and stages, chained in an order
    drawn from ``shuffle_calls`` (the stages are declarative: any order, one stream)."""
    from nishard import stream

    args, api = case["args"], case["api"]
    split = args.get("split", "train" if api in ("torch", "jax") else None)
    if api == "arrays" and split is None:
        split = stream.EVERY_SPLIT
    calls = [lambda s: s.keys(), lambda s: s.fields(meta=False)]
    if args.get("shuffle"):
        calls.append(lambda s: s.shuffle(args.get("seed", 0), args.get("buffer", 1000)))
    if api in ("torch", "jax"):  # the factories always sharded (by default 0 of 1 here)
        calls.append(lambda s: s.shard(args.get("rank"), args.get("world_size"),
                                       args.get("remainder", "wrap")))  # fmt: skip
    if args.get("batch_size") is not None:
        calls.append(lambda s: s.batch(args["batch_size"], args.get("drop_last", False)))
    if args.get("epoch") or args.get("length"):
        calls.append(lambda s: s.epoch(args.get("epoch", 0), args.get("length")))
    random.Random(shuffle_calls).shuffle(calls)
    composed = stream.open(folder, split, format=args.get("format"))
    for call in calls:
        composed = call(composed)
    return composed


def composed_orders(folder: Path, case: dict, terminal: str, order: str = ""):
    """The keys of each batch of each epoch of the composed stream's ``terminal``."""
    made = composed(folder, case, order)
    epochs = case.get("epochs", [case["args"].get("epoch", 0)])
    if terminal == "torch":
        from torch.utils.data import DataLoader

        data = made.torch()
    elif terminal in ("grain", "map_dataset", "jax", "arrays"):
        data = getattr(made, terminal)()
    out = {}
    for epoch in epochs:
        if epoch != data.epoch:
            data.set_epoch(epoch)
        if terminal == "torch":
            items = DataLoader(data, batch_size=None, num_workers=case.get("workers", 0))
        elif terminal in ("grain", "map_dataset"):
            items = (data[i] for i in range(len(data)))
        else:
            items = data
        out[str(epoch)] = [_keys(b) for b in items]
        assert len(out[str(epoch)]) == len(data)
    return out


@pytest.fixture(scope="module")
def golden_shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("golden") / "shards")


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


def test_the_golden_file_has_every_case_and_its_arguments(golden):
    assert sorted(golden) == sorted(CASES)
    for name, case in CASES.items():
        assert {k: golden[name][k] for k in case} == json.loads(json.dumps(case)), name


def test_the_cases_cover_each_sample_as_the_order_promises(golden):
    # What the orders must be, checked on the file itself (so a regenerated file that
    # broke them would fail): one pass per epoch on one rank is a permutation of the split.
    train = sorted(SPLITS["train"])
    for epoch, batches in golden["torch_buffer4_drop_last_workers2"]["orders"].items():
        assert [len(b) for b in batches] == [4] * 4, epoch
    epoch0 = golden["torch_default_buffer_batch4"]["orders"]
    assert sorted(k for b in epoch0["0"] for k in b) == train
    assert epoch0["0"] != epoch0["1"]
    ranks = [golden[f"torch_drop_rank{r}_of4"]["orders"]["0"] for r in range(4)]
    read = [k for batches in ranks for b in batches for k in b]
    assert len(read) == len(set(read)) == 16  # 18 // 4 each, disjoint
    wrap = [golden[f"torch_wrap_rank{r}_of5_unshuffled"]["orders"]["0"] for r in range(5)]
    assert [k for batches in wrap for b in batches for k in b] == (train + train)[:20]
    assert golden["torch_manifest_order"]["orders"]["0"] == [[k] for k in train]
    # Epochs of 7 walk through the passes: the first 18 samples read are the first pass.
    length = golden["torch_length_7"]["orders"]
    walked = [k for e in ("0", "1", "2", "3") for b in length[e] for k in b]
    assert len(walked) == 28 and sorted(walked[:18]) == train and walked[18:] != walked[:10]


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_deprecated_factories_reproduce_the_golden_orders(golden_shards, golden, name):
    api = CASES[name]["api"]
    if api in ("torch", "jax", "arrays"):
        with pytest.warns(DeprecationWarning, match=rf"ns\.stream\.{api}\(.*is deprecated"):
            assert legacy_orders(golden_shards, CASES[name]) == golden[name]["orders"]
    else:
        assert legacy_orders(golden_shards, CASES[name]) == golden[name]["orders"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_composed_streams_reproduce_the_golden_orders(golden_shards, golden, name):
    case = CASES[name]
    terminal = {"MapDataset": "map_dataset", "GrainSource": "grain"}.get(case["api"], case["api"])
    # Stages chained in two orders: the same stream, the same batches.
    assert composed(golden_shards, case, "a") == composed(golden_shards, case, "b")
    assert composed_orders(golden_shards, case, terminal, "a") == golden[name]["orders"]


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c["api"] == "torch"))
@pytest.mark.parametrize("terminal", ["jax", "arrays", "map_dataset", "grain"])
def test_every_terminal_reads_the_torch_order(golden_shards, golden, name, terminal):
    # One stream, one order: item i of the random-access terminals is batch i.
    case = CASES[name]
    assert composed_orders(golden_shards, case, terminal) == golden[name]["orders"]


def _write() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_shards(Path(tmp) / "shards")
        recorded = {name: {**case, "orders": legacy_orders(folder, case)}
                    for name, case in CASES.items()}  # fmt: skip
    text = json.dumps(recorded, indent=1, sort_keys=True)
    # A batch on one line: the file reads (and diffs) batch by batch.
    text = re.sub(r'\[\s+("[^"]*"(?:,\s+"[^"]*")*)\s+\]',
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)  # fmt: skip
    GOLDEN.write_text(text + "\n")
    print(f"wrote {len(recorded)} cases to {GOLDEN}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Record the golden orders again.")
    parser.add_argument("--write", action="store_true", required=True)
    parser.parse_args()
    _write()
    sys.exit(0)
