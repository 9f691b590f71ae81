"""Plans as DAGs: branching specs, several products, drops, explain, and refused specs."""

from __future__ import annotations

import numpy as np
import pytest

from nishard.errors import SpecError
from nishard.transforms import Cast, Clean, Connectivity, Mask, Parcellate, Standardize
from nishard.workflow import assemble
from tests.workflow.dags import BAND, EachStep, outcome_products


def branching(atlas: str) -> list:
    """Region signals, cleaned; their connectivity from the float32 signals, and the signals
    themselves stored as float16: two branches from the same cleaned data."""
    return [
        Parcellate(atlas, mask=True),
        Clean(confounds="simple", **BAND),
        Connectivity(output="connectivity"),
        Cast(dtype="float16"),
    ]


def test_a_branching_spec_is_a_dag(atlas):
    plan = assemble(branching(atlas), fusion=EachStep())
    parcellate, clean, connectivity, cast = plan.nodes
    assert parcellate.loads == ("bold", "mask") and parcellate.parents == ()
    assert parcellate.outputs == ("bold", "regions")
    assert clean.loads == ("confounds",) and clean.parents == (0,)
    assert clean.outputs == ("bold", "volumes")
    # Both branches read the cleaned signals: the cast does not follow the connectivity.
    assert connectivity.parents == (1,) and connectivity.outputs == ("connectivity",)
    assert cast.parents == (1,) and cast.outputs == ("bold",)
    assert connectivity.loads == cast.loads == ()
    assert set(plan.products) == {"bold", "regions", "volumes", "connectivity"}
    assert plan.inputs == ("bold", "mask", "confounds")


def test_both_branches_leave_the_plan_and_equal_the_fused_chain(atlas, record):
    dag = outcome_products(assemble(branching(atlas), fusion=EachStep()), record)
    chain = outcome_products(assemble(branching(atlas)), record)
    assert len(assemble(branching(atlas)).nodes) == 1
    assert set(dag) == set(chain) == {"bold", "regions", "volumes", "connectivity"}
    for key in dag:
        np.testing.assert_array_equal(dag[key], chain[key])
    # The connectivity branch saw the float32 signals, not the float16 ones of the other.
    cleaned = outcome_products(assemble(branching(atlas)[:2]), record)["bold"]
    assert dag["bold"].dtype == np.float16 and cleaned.dtype == np.float32
    expected = Connectivity()({"bold": cleaned})["connectivity"]
    np.testing.assert_array_equal(dag["connectivity"], expected)
    n = len(dag["regions"])
    assert dag["connectivity"].shape == (n, n) and dag["bold"].shape[1] == n


def test_region_and_voxel_products_of_one_run(atlas, record):
    """Parcellate into another key: the 4D image stays for the mask of the voxel branch."""
    steps = [
        Parcellate(atlas, mask=True, output="timeseries"),
        Mask(),
        Standardize(),
        Standardize(key="timeseries"),
        Connectivity(key="timeseries", keep_timeseries=False),
    ]
    plan = assemble(steps, products=["bold", "connectivity"], fusion=EachStep())
    assert plan.nodes[1].parents == () and plan.nodes[4].parents == (3,)
    both = outcome_products(plan, record)
    voxels = outcome_products(assemble([Mask(), Standardize()]), record)["bold"]
    regions = outcome_products(assemble(steps[:1] + steps[3:]), record)
    np.testing.assert_array_equal(both["bold"], voxels)
    np.testing.assert_array_equal(both["connectivity"], regions["connectivity"])
    assert both["connectivity"].shape[0] < both["bold"].shape[1]


def test_products_choose_what_leaves_the_plan(atlas, record):
    plan = assemble(branching(atlas), products=["connectivity", "regions"], fusion=EachStep())
    assert set(outcome_products(plan, record)) == {"connectivity", "regions"}
    # Nothing reads the cast: its node hands on nothing, and nothing runs it.
    assert plan.nodes[3].outputs == ()
    assert plan.nodes[1].outputs == ("bold",)


def test_a_staged_file_can_be_a_product_and_is_checksummed(record):
    plan = assemble([Mask(), Standardize()], products=["bold", "confounds"])
    assert plan.inputs == ("bold", "mask", "confounds")
    outcome = plan.run(record)
    assert outcome.error is None
    table, _ = outcome.products["confounds"]
    assert len(table) == outcome.products["bold"].shape[0]
    assert record.files["confounds"] in outcome.checksums


def test_a_dropped_series_is_no_product(atlas, record):
    steps = [Parcellate(atlas), Connectivity(output="connectivity", keep_timeseries=False)]
    plan = assemble(steps)
    assert plan.products == ("regions", "connectivity")
    products = outcome_products(plan, record)
    assert set(products) == {"regions", "connectivity"}
    with pytest.raises(SpecError, match="drops"):
        assemble(steps, products=["bold", "connectivity"])
    with pytest.raises(SpecError, match="drops"):
        assemble([*steps, Cast(dtype="float16")])


@pytest.mark.parametrize(
    ("steps", "products", "message"),
    [
        ([Mask(), Connectivity(key="signals")], None, "'signals', which no earlier step"),
        ([Mask()], ["bold", "nowhere"], "product 'nowhere'"),
        ([Mask(), "standardize"], None, "a transform"),
    ],
)
def test_refused_specs_name_the_key(steps, products, message):
    with pytest.raises(SpecError, match=message):
        assemble(steps, products=products)


def test_explain_lists_nodes_steps_demands_and_products(atlas, record):
    text = assemble(branching(atlas), fusion=EachStep(), example=record).explain()
    assert "4 steps in 4 nodes (fusion: each_step)" in text
    assert "node 2 [numpy, peak ~" in text and "after node 1: connectivity" in text
    assert "node 3 [numpy, peak ~" in text and "after node 1: cast" in text
    assert "loads bold, mask" in text and "loads confounds" in text
    assert "whole time axis" in text and "memory x" in text
    assert text.splitlines()[-1] == "products: bold, regions, volumes, connectivity"
    # Without shapes there is nothing to estimate from.
    assert "peak" not in assemble(branching(atlas)).explain()


def test_a_record_is_computed_on_one_blas_thread_whatever_the_process_allows(record, monkeypatch):
    """BLAS products differ in their last bits with the number of threads that share them:
    a record computed in the writer's process (every core) and in a worker (one thread)
    would give other shards. Every step runs on one BLAS thread, then the limit is lifted."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from nishard.workflow import plan as plan_module

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    seen: list[set[int]] = []
    apply = plan_module._apply

    def watched(*args, **kwargs):
        seen.append(blas_threads())
        return apply(*args, **kwargs)

    monkeypatch.setattr(plan_module, "_apply", watched)
    with threadpool_limits(limits=2, user_api="blas"):
        outcome = assemble([Mask(), Clean(**BAND)]).run(record)
        assert blas_threads() == {2}  # given back
    assert outcome.error is None and seen and all(threads == {1} for threads in seen)
