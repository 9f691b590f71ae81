"""Archive families: which products go to which format, under which shard names.

By default each format gets every product of every sample. A family narrows a format to
some products, so that, say, region time series go to WebDataset tar for PyTorch and
connectivity matrices to TFRecord for a TensorFlow model, or each product gets shards of
its own and a loader reads only the bytes it trains on::

    write(records, plan, "shards/", formats=[
        Family(WebDataset(), products=("regions",)),         # train-regions-000000.tar
        Family(TFRecord(), products=("connectivity",)),      # train-connectivity-000000.tfrecord
    ])

or, in a spec, ``formats: [{name: webdataset, products: [regions]}, {name: tfrecord,
products: [connectivity]}]``; ``products: each`` gives one family per product. Every
family holds every sample written (its metadata too), in the same order and splits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import SpecError
from .shards import Format

_NAME = re.compile(r"^[A-Za-z0-9_]+$")

#: ``products: each`` in a spec: one family per product of the plan.
EACH = "each"


@dataclass(frozen=True)
class Family:
    """A format narrowed to some products, its shards named after them.

    Parameters
    ----------
    format : Format
        Any registered format (:data:`nishard.archives.FORMATS`).
    products : tuple of str or "each"
        The products its samples hold; ``"each"`` makes one family per product of the plan
        (see :func:`resolve`).
    name : str, optional
        The family's part of the shard names, ``<split>-<name>-000000<ext>`` (letters,
        digits, ``_``); default: the products' names joined by ``_``.
    """

    format: Format
    products: tuple[str, ...] | str
    name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.products, str) and self.products != EACH:
            object.__setattr__(self, "products", (self.products,))
        if self.products != EACH and not self.products:
            raise ValueError("a family needs at least one product")
        name = self.name or (None if self.products == EACH else "_".join(self.products))
        if name is not None and not _NAME.match(name):
            raise ValueError(f"family name {name!r}: use letters, digits and _")
        object.__setattr__(self, "name", name)

    def to_dict(self) -> dict:
        products = self.products if self.products == EACH else list(self.products)
        return {**self.format.to_dict(), "products": products, "family": self.name}


def resolve(formats: Sequence[Format | Family], products: Sequence[str]) -> list[Family | Format]:
    """The formats of a build with ``products: each`` expanded and everything checked.

    Parameters
    ----------
    formats : sequence of Format or Family
    products : sequence of str
        The plan's products.

    Raises
    ------
    SpecError
        A family's product the plan does not make, or two writers of the same shard names.
    """
    resolved: list[Family | Format] = []
    for item in formats:
        if isinstance(item, Family) and item.products == EACH:
            resolved += [Family(item.format, (p,)) for p in products]
        else:
            resolved.append(item)
    seen: set[tuple[str, str | None]] = set()
    for item in resolved:
        if isinstance(item, Family):
            unknown = [p for p in item.products if p not in products]
            if unknown:
                raise SpecError(
                    f"family {item.name!r} ({item.format.name}): no product {unknown}; "
                    f"the plan makes {list(products)}"
                )
        ident = (unwrap(item).name, family_name(item))
        if ident in seen:
            which = f"family {ident[1]!r}" if ident[1] else "all products"
            raise SpecError(f"{ident[0]} is written twice with {which}: give a family name")
        seen.add(ident)
    return resolved


def unwrap(item: Format | Family) -> Format:
    """The format that writes the shards."""
    return item.format if isinstance(item, Family) else item


def family_name(item: Format | Family) -> str | None:
    """The family part of the shard names; None for a format of every product."""
    return item.name if isinstance(item, Family) else None


def family_products(item: Format | Family) -> tuple[str, ...] | None:
    """The products a writer keeps; None for all."""
    return item.products if isinstance(item, Family) else None
