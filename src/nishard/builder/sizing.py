"""Upper bounds of each record's sample in each written format, from headers only.

What a byte limit is planned from (:class:`~.planning.SampleBounds`): the products'
shapes as the plan infers them from the record's file headers (an upper bound where the
data decide, as censoring does), their dtypes, the record's metadata (the JSON member) and
each format's framing, measured by :func:`~nishard.archives.shards.sample_bound`. No
data is read (a brain mask aside, which is small and read for its count of voxels).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..archives.families import Family, family_products, unwrap
from ..archives.shards import Format, sample_bound
from ..progress import bar as progress_bar
from ..records.table import Record
from ..workflow.fusion import chain_specs
from ..workflow.headers import describe_inputs
from ..workflow.plan import Plan
from ..workflow.timing import settle_timing
from .planning import SampleBounds


def sample_bounds(
    records: Sequence[Record],
    plan: Plan,
    writing: Sequence[Format | Family],
    progress: bool = False,
) -> SampleBounds:
    """Per record, per written format (or family), an upper bound of its sample's bytes.

    A record whose bound cannot be known (a header that cannot be read, shapes a step
    cannot take, metadata the format cannot encode) gets None: it will most likely be
    quarantined, and is planned alone so that no limit depends on it. ``progress`` shows a
    bar: headers are read one record after another (a few ms each).
    """
    bar = progress_bar(records, unit="record", desc="plan", disable=not progress, leave=False)
    return SampleBounds(
        sizes={record.id: record_bounds(record, plan, writing) for record in bar},
        file_size=tuple(unwrap(item).file_size for item in writing),
    )


def record_bounds(
    record: Record, plan: Plan, writing: Sequence[Format | Family]
) -> tuple[int | None, ...]:
    """One record's bounds, one per written format or family (see :func:`sample_bounds`)."""
    unknown = (None,) * len(writing)
    try:
        # The metadata as the writer will encode it: the TR settled from the header.
        record, _ = settle_timing(record, plan.inputs)
        specs = chain_specs(plan.steps, describe_inputs(record, plan.inputs))[-1]
    except Exception:  # the run itself will say what is wrong, or succeed
        return unknown
    if any(name not in specs for name in plan.products):
        return unknown  # a product no header describes (a staged file kept as it is)
    shapes = {name: (tuple(specs[name].shape), str(specs[name].dtype)) for name in plan.products}
    bounds: list[int | None] = []
    for item in writing:
        kept = family_products(item)
        products = shapes if kept is None else {k: v for k, v in shapes.items() if k in kept}
        try:
            bounds.append(sample_bound(unwrap(item), record.id, products, record.metadata))
        except (ValueError, TypeError):  # the writer will quarantine it as well
            bounds.append(None)
    return tuple(bounds)
