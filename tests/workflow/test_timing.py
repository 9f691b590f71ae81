"""A record's TR is settled where its image is loaded (issue [2/6], items 2, 3 and 9):
the sidecar wins over a disagreeing header with a warning in the manifest, a protocol or
pending TR gives way to the header, and every executor writes the same."""

from __future__ import annotations

import json
import math
import os
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import nishard as ns
from nishard.records.table import Record
from nishard.workflow.pydra import Pydra
from nishard.workflow.timing import settle_timing
from tests.helpers import TINY_RES, bold_files


def _image(path: Path, t_r: float, units: str = "sec") -> str:
    img = nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.float32), np.eye(4))
    img.header.set_zooms((2.0, 2.0, 2.0, t_r))
    img.header.set_xyzt_units("mm", units)
    nib.save(img, path)
    return str(path)


def _record(path: str, t_r: float | None, source: str) -> Record:
    return Record("sub-01_task-rest", {"bold": path}, {"t_r": t_r, "t_r_source": source})


def test_the_sidecar_wins_and_a_header_off_by_more_than_1_ms_is_a_warning(tmp_path):
    path = _image(tmp_path / "a.nii.gz", 2.5)
    record, warnings = settle_timing(_record(path, 2.0, "sidecar"), ("bold",))
    assert record.metadata == {"t_r": 2.0, "t_r_source": "sidecar"}
    assert warnings == ((path, "the header's repetition time 2.5 s differs from the "
                               "sidecar's 2 s; the sidecar's is used (BIDS)"),)  # fmt: skip
    # 2000 ms in the header is 2 s: units are read, and 0.5 ms apart is agreement.
    same = _image(tmp_path / "b.nii.gz", 2000.5, "msec")
    assert settle_timing(_record(same, 2.0, "sidecar"), ("bold",))[1] == ()


def test_a_protocol_or_pending_tr_gives_way_to_the_header(tmp_path):
    path = _image(tmp_path / "a.nii.gz", 0.8)
    record, warnings = settle_timing(_record(path, 0.72, "protocol"), ("bold",))
    assert record.metadata == {"t_r": pytest.approx(0.8), "t_r_source": "header"}
    assert "differs from the protocol's 0.72 s; the header's is used" in warnings[0][1]
    record, warnings = settle_timing(_record(path, None, "pending"), ("bold",))
    assert record.metadata["t_r_source"] == "header" and warnings == ()
    # A header without a TR (zoom 0): the record says so, the steps that need one refuse.
    none = _image(tmp_path / "b.nii.gz", 0.0)
    record, _ = settle_timing(_record(none, None, "pending"), ("bold",))
    assert record.metadata == {"t_r": None, "t_r_source": "none"}


def test_nothing_is_read_where_nothing_is_to_settle(tmp_path):
    missing = str(tmp_path / "not-fetched.nii.gz")
    for source in ("header", "volume_timing", "none"):
        given = _record(missing, None, source)
        assert settle_timing(given, ("bold",)) == (given, ())
    unreadable = _record(missing, 0.72, "protocol")  # its loader names the missing file
    assert settle_timing(unreadable, ("bold",)) == (unreadable, ())
    path = _image(tmp_path / "a.nii.gz", 0.8)
    confounds_only = _record(path, 0.72, "protocol")
    assert settle_timing(confounds_only, ("confounds",)) == (confounds_only, ())


CLEAN = ns.t.Clean(detrend=True, standardize="zscore_sample", high_pass=0.01)


def _sidecar(bold: Path) -> Path:
    return bold.with_name(bold.name.replace(".nii.gz", ".json"))


def _metas(out: Path) -> dict[str, dict]:
    metas = {}
    for shard in sorted(out.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    meta = json.loads(tar.extractfile(member).read())
                    metas[member.name.split(".")[0]] = meta
    return metas


@pytest.mark.slow
def test_every_executor_settles_the_same_trs_and_reports_the_same_warnings(tiny_copy, tmp_path):
    bolds = bold_files(tiny_copy)
    header_tr = float(nib.load(bolds[0]).header.get_zooms()[3])
    # Run 0: its sidecar disagrees with its header. Run 1: not fetched when indexed (a
    # broken symlink, no TR in its sidecar), fetched before the build. Run 2: irregular
    # VolumeTiming, which the cleaning step (a high-pass filter) cannot take.
    _sidecar(bolds[0]).write_text(json.dumps({"RepetitionTime": header_tr + 0.5}))
    _sidecar(bolds[1]).write_text("{}")
    fetched = bolds[1].read_bytes()
    bolds[1].unlink()
    os.symlink("../../.git/annex/objects/not-there", bolds[1])
    n = nib.load(bolds[2]).shape[3]
    _sidecar(bolds[2]).write_text(json.dumps({"VolumeTiming": [2.0 * i for i in range(n)]}))
    records = ns.locate(tiny_copy, schema=ns.schemas.fmriprep(res=TINY_RES))
    frame = records.frame
    ids = [frame.index[frame["bold"] == str(b)][0] for b in bolds[:3]]
    assert frame.loc[ids, "t_r_source"].tolist() == ["sidecar", "pending", "volume_timing"]
    bolds[1].unlink()
    bolds[1].write_bytes(fetched)  # `datalad get`

    plan = ns.assemble([ns.t.Mask(), CLEAN])
    manifests = {}
    for name, executor in {"serial": ns.executors.serial(), "local": ns.executors.local(2),
                           "pydra": Pydra(worker="cf", jobs=2, batch=4)}.items():  # fmt: skip
        out = tmp_path / name
        manifest = ns.write(records, plan, out, executor=executor, progress=False)
        metas = _metas(out)
        assert metas[ids[0]]["t_r"] == header_tr + 0.5  # the sidecar's
        assert metas[ids[0]]["t_r_source"] == "sidecar"
        assert metas[ids[1]]["t_r"] == header_tr and metas[ids[1]]["t_r_source"] == "header"
        assert manifest["warnings"] == [{
            "record": ids[0], "file": str(bolds[0].relative_to(tiny_copy)),
            "warning": f"the header's repetition time {header_tr:g} s differs from the "
                       f"sidecar's {header_tr + 0.5:g} s; the sidecar's is used (BIDS)",
        }]  # fmt: skip
        [entry] = manifest["quarantine"]
        assert entry["record"] == ids[2] and entry["file"] == str(bolds[2].relative_to(tiny_copy))
        assert "a regular RepetitionTime" in entry["expected"]
        assert entry["found"] == "irregular VolumeTiming and no RepetitionTime in the sidecar"
        assert manifest["records"]["written"] == len(records) - 1
        manifests[name] = {k: v for k, v in manifest.items() if k not in ("checksum", "spec")}
    assert manifests["local"] == manifests["serial"] == manifests["pydra"]
    assert not any(math.isnan(m["t_r"]) for m in metas.values() if m["t_r"] is not None)
