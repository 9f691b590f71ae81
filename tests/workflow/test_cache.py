"""The node cache: reruns do no transform work, edits re-run only what follows them.

Transform work is counted by wrapping ``__call__`` of every registered transform class (and
the read that masks as it loads, for a first ``Mask()``).
"""

from __future__ import annotations

import collections
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nishard.transforms import TRANSFORMS, Cast, Clean, Mask, Parcellate
from nishard.workflow import NodeCache, assemble
from nishard.workflow import plan as plan_module
from tests.workflow.dags import BAND, EachStep, outcome_products, records


@pytest.fixture
def calls(monkeypatch) -> collections.Counter:
    """Calls of each transform by name, from the moment the fixture is requested."""
    counter: collections.Counter = collections.Counter()
    for cls in TRANSFORMS.values():
        original = cls.__call__

        def counted(self, sample, _original=original):
            counter[self.name] += 1
            return _original(self, sample)

        monkeypatch.setattr(cls, "__call__", counted)
    # A first Mask() is done by the read (the mask's voxels gathered volume by volume):
    # that read is the mask's work.
    load_inputs = plan_module.load_inputs

    def loading(record, kinds, masked_bold=False):
        counter["mask"] += masked_bold
        return load_inputs(record, kinds, masked_bold)

    monkeypatch.setattr(plan_module, "load_inputs", loading)
    return counter


@pytest.fixture
def cache(tmp_path) -> NodeCache:
    return NodeCache(tmp_path / "cache")


def steps(dtype: str = "float16") -> list:
    return [Mask(), Clean(confounds="simple", **BAND), Cast(dtype=dtype)]


def same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_an_unchanged_rerun_does_no_transform_work(record, cache, calls, monkeypatch):
    first = outcome_products(assemble(steps()), record, cache)
    assert calls == {"mask": 1, "clean": 1, "cast": 1}
    loads = collections.Counter()
    load_inputs = plan_module.load_inputs
    monkeypatch.setattr(plan_module, "load_inputs",
                        lambda r, kinds: loads.update(kinds) or load_inputs(r, kinds))  # fmt: skip
    calls.clear()
    again = outcome_products(assemble(steps()), record, cache)
    assert calls == {} and loads == {}  # neither transforms nor loading
    same(first, again)
    assert cache.size() > 0


def test_editing_the_last_step_reruns_only_its_node(record, cache, calls):
    plan = assemble(steps("float16"), fusion=EachStep())
    assert [len(node.steps) for node in plan.nodes] == [1, 1, 1]  # the cast is its own node
    outcome_products(plan, record, cache)
    calls.clear()
    edited = outcome_products(assemble(steps("bfloat16"), fusion=EachStep()), record, cache)
    assert calls == {"cast": 1}
    uncached = outcome_products(assemble(steps("bfloat16")), record)
    same(edited, uncached)


def test_a_fused_last_step_reruns_its_whole_node(record, cache, calls):
    outcome_products(assemble(steps("float16")), record, cache)
    calls.clear()
    outcome_products(assemble(steps("bfloat16")), record, cache)
    assert calls == {"mask": 1, "clean": 1, "cast": 1}


def test_a_backend_boundary_makes_the_last_step_its_own_node(record, cache, calls):
    pytest.importorskip("jax")
    band = [Mask(), Clean(backend="jax", **BAND)]
    plan = assemble(band)
    assert [node.backend for node in plan.nodes] == ["numpy", "jax"]
    outcome_products(plan, record, cache)
    calls.clear()
    outcome_products(assemble([Mask(), Clean(backend="jax", low_pass=0.08, high_pass=0.01)]),
                     record, cache)  # fmt: skip
    assert calls == {"clean": 1}


def test_keys_follow_the_bytes_of_input_files(tiny_copy):
    record = records(tiny_copy)[0]
    plan = assemble(steps(), fusion=EachStep())

    def keys() -> list[str]:
        return plan.node_keys(record, plan_module.input_checksums(record, plan.inputs))

    before = keys()
    assert len(set(before)) == 3
    # The confounds feed the clean node: its key and its child's change, not the mask's.
    confounds = Path(record.files["confounds"])
    confounds.write_text(confounds.read_text().replace("0", "1", 1))
    after = keys()
    assert after[0] == before[0] and after[1] != before[1] and after[2] != before[2]
    # Every node descends from the BOLD run.
    bold = nib.load(record.files["bold"])
    data = np.asarray(bold.dataobj) * np.float32(1.001)
    nib.save(nib.Nifti1Image(data, bold.affine, bold.header), record.files["bold"])
    assert all(a != b for a, b in zip(keys(), after, strict=True))


def test_keys_follow_the_bytes_of_files_a_step_names(atlas, record, tmp_path):
    copy = tmp_path / "labels.nii.gz"
    copy.write_bytes(Path(atlas).read_bytes())
    plan = assemble([Parcellate(str(copy)), Clean(**BAND)], fusion=EachStep())
    checksums = plan_module.input_checksums(record, plan.inputs)
    before = plan.node_keys(record, checksums)
    img = nib.load(copy)
    labels = np.asarray(img.dataobj).copy()
    labels[labels == 1] = 2  # same path, other regions
    nib.save(nib.Nifti1Image(labels, img.affine), copy)
    after = plan.node_keys(record, checksums)
    assert after[0] != before[0] and after[1] != before[1]


def test_a_corrupted_cache_file_is_recomputed(record, cache, calls):
    plan = assemble(steps(), fusion=EachStep())
    first = outcome_products(plan, record, cache)
    keys = plan.node_keys(record, plan_module.input_checksums(record, plan.inputs))
    cache.path(keys[2]).write_bytes(b"not a joblib file")
    calls.clear()
    same(outcome_products(plan, record, cache), first)
    assert calls == {"cast": 1}
    assert cache.load(keys[2]) is not None  # stored again


def test_asking_for_another_product_does_not_reuse_outputs_that_lack_it(record, cache):
    outcome_products(assemble(steps(), products=["volumes"]), record, cache)
    products = outcome_products(assemble(steps(), products=["volumes", "bold"]), record, cache)
    assert products["bold"].dtype == np.float16


def test_nodes_run_one_by_one_then_collected_do_no_more_work(record, cache, calls):
    plan = assemble(steps(), fusion=EachStep())
    keys = [plan.run_node(number, record, cache) for number in range(len(plan.nodes))]
    assert all(key in cache for key in keys)
    assert calls == {"mask": 1, "clean": 1, "cast": 1}
    calls.clear()
    collected = plan.collect(record, cache)
    assert calls == {} and collected.error is None
    same(collected.products, outcome_products(assemble(steps()), record))


def test_info_counts_entries_and_clear_removes_only_the_stores_files(tmp_path):
    folder = tmp_path / "mixed"
    cache = NodeCache(folder)
    keys = ["ab" + "0" * 30, "ab" + "1" * 30, "cd" + "2" * 30]
    for key in keys:
        cache.save(key, {"x": np.zeros(100)})
    (folder / "ab" / "tmp123.tmp").write_bytes(b"a killed save")
    # Files the store did not write: a user's, and names that only look like entries.
    (folder / "notes.txt").write_text("mine")
    misfiled = "ab/cd" + "3" * 30 + ".joblib"  # a key under another key's folder
    (folder / misfiled).write_bytes(b"misfiled")
    (folder / "ef").mkdir()
    (folder / "ef" / "model.joblib").write_bytes(b"someone's model")
    info = cache.info()
    assert (info.entries, info.bytes) == (3, sum(cache.path(k).stat().st_size for k in keys))
    assert cache.size() == info.bytes

    assert cache.clear() == info
    assert not any(key in cache for key in keys)
    assert not (folder / "cd").exists() and not (folder / "ab" / "tmp123.tmp").exists()
    left = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert left == [misfiled, "ef/model.joblib", "notes.txt"]
    assert cache.info().entries == 0


def test_clearing_a_cache_of_only_entries_removes_its_folder(record, cache):
    outcome_products(assemble(steps()), record, cache)
    assert cache.info().entries == 1  # one fused node
    cache.clear()
    assert not cache.folder.exists()
    assert cache.info().entries == 0 and cache.clear().entries == 0


def test_collected_products_map_the_stored_files(record, cache):
    """A workflow engine's products reach the writer as mappings, not copies, and stay
    readable once the store's file is gone."""
    plan = assemble(steps())
    [key] = [plan.run_node(number, record, cache) for number in range(len(plan.nodes))]
    collected = plan.collect(record, cache).products["bold"]
    assert isinstance(collected, np.memmap) and not collected.flags.writeable
    assert Path(collected.filename) == cache.path(key)
    expected = outcome_products(plan, record)["bold"]
    cache.path(key).unlink()
    np.testing.assert_array_equal(collected, expected)
