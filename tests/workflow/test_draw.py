"""Plans drawn as pictures: valid PNG and SVG files naming steps, inputs and products."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from nishard.errors import SpecError
from nishard.transforms import Cast, Clean, Connectivity, Parcellate
from nishard.workflow import assemble
from nishard.workflow.draw import draw
from tests.workflow.dags import BAND, EachStep


@pytest.fixture
def plan(atlas, record):
    steps = [Parcellate(atlas, mask=True), Clean(confounds="simple", **BAND),
             Connectivity(output="connectivity"), Cast(dtype="float16")]  # fmt: skip
    return assemble(steps, fusion=EachStep(), example=record)


def svg_text(path) -> str:
    root = ET.parse(path).getroot()  # raises on anything but well-formed XML
    assert root.tag.endswith("svg")
    return " ".join(t.strip() for el in root.iter() if el.tag.endswith("text")
                    for t in el.itertext())  # fmt: skip


def test_png(plan, tmp_path):
    path = plan.draw(tmp_path / "plan.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000


def test_svg_names_nodes_steps_backends_estimates_inputs_and_products(plan, tmp_path):
    text = svg_text(draw(plan, tmp_path / "plan.svg"))
    for word in ("parcellate", "clean", "connectivity", "cast", "node 3", "numpy", "MiB",
                 "bold", "mask", "confounds", "regions", "volumes"):  # fmt: skip
        assert word in text, word


def test_fused_steps_share_a_box_and_estimates_need_shapes(atlas, tmp_path):
    plan = assemble([Parcellate(atlas), Clean(**BAND)])
    text = svg_text(plan.draw(tmp_path / "plan.svg"))
    assert "node 0 [numpy]" in text and "node 1" not in text
    assert "parcellate" in text and "clean" in text


def test_another_suffix_is_refused(plan, tmp_path):
    with pytest.raises(SpecError, match=r"\.png or \.svg"):
        plan.draw(tmp_path / "plan.pdf")
