"""Sources against real clients: an HTTP server on loopback, and real DataLad datasets."""

from __future__ import annotations

import filecmp
import importlib.util
import os
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

import nishard as ns
from nishard.records.sources import SOURCES, DataLad, Url, parse_listing, write_listing
from tests.helpers import TINY_RES, bold_files

STAGE = ("bold", "mask")


@dataclass
class Served:
    """A folder served over HTTP on loopback, and the log of its answers."""

    url: str
    root: Path
    log: list[tuple[str, int]]
    #: Paths answered 503 (Service Unavailable) this many times before they are served.
    flaky: dict[str, int]

    def downloads(self) -> list[str]:
        """The paths answered with content (200), in the order asked."""
        return [path for path, code in self.log if code == 200]


@pytest.fixture
def served(tiny, tmp_path) -> Iterator[Served]:
    """A private copy of ``tiny`` served by a real HTTP server on 127.0.0.1."""
    root = Path(shutil.copytree(tiny, tmp_path / "served"))
    log: list[tuple[str, int]] = []
    flaky: dict[str, int] = {}

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urllib.parse.unquote(self.path)
            if flaky.get(path, 0) > 0:
                flaky[path] -= 1
                self.send_error(503)
                return
            super().do_GET()

        def log_request(self, code="-", size="-") -> None:
            # Every answer, content or error, passes here: the test's record of traffic.
            log.append((urllib.parse.unquote(self.path), int(code)))

        def log_message(self, format, *args) -> None:
            pass  # keep the test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}/", root, log, flaky)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _locate(root, **kwargs):
    kwargs.setdefault("schema", ns.schemas.fmriprep(res=TINY_RES))
    kwargs.setdefault("variables", ns.tables.participants(["age"]))
    kwargs.setdefault("stage", STAGE)
    kwargs.setdefault("filters", [ns.filters.complete(variables=True)])
    return ns.locate(root, **kwargs)


def _forget_age(root: Path, subject: str) -> None:
    """Blank one subject's age, so that ``complete(variables=True)`` drops its records."""
    table = pd.read_csv(root / "participants.tsv", sep="\t", dtype=str)
    table.loc[table["participant_id"] == f"sub-{subject}", "age"] = "n/a"
    table.to_csv(root / "participants.tsv", sep="\t", index=False)


def _staged(records, root: Path) -> set[str]:
    return {
        Path(path).relative_to(root).as_posix()
        for kind in records.files
        for path in records.frame[kind]
    }


def _eager(root: Path) -> set[str]:
    """What prepare downloads by default: every JSON and participants.tsv (no phenotype/)."""
    jsons = {p.relative_to(root).as_posix() for p in root.rglob("*.json")}
    return {p for p in jsons if not p.startswith(".")} | {"participants.tsv"}


def test_url_finds_the_local_records_downloading_only_staged_files_of_kept_ones(served, tmp_path):
    _forget_age(served.root, "02")
    write_listing(served.root)
    local = _locate(served.root)
    cache = tmp_path / "cache"
    remote = _locate(served.url, source=Url(listing="files.tsv", cache=str(cache)))

    assert list(remote.frame.index) == list(local.frame.index)
    assert "sub-02" not in " ".join(remote.frame.index) and len(remote) > 0
    entities = remote.frame.drop(columns=list(STAGE))
    pd.testing.assert_frame_equal(entities, local.frame.drop(columns=list(STAGE)))
    pd.testing.assert_frame_equal(remote.dropped, local.dropped)
    assert remote.root == str(cache.absolute())
    assert remote.spec["source"] == Url(listing="files.tsv", cache=str(cache)).to_dict()
    staged = _staged(remote, cache)
    assert staged == _staged(local, served.root)
    for rel in staged:
        assert filecmp.cmp(cache / rel, served.root / rel, shallow=False), rel

    downloaded = served.downloads()
    assert len(downloaded) == len(set(downloaded))  # nothing twice
    assert {p.lstrip("/") for p in downloaded} == {"files.tsv"} | _eager(served.root) | staged
    assert not any(p.endswith("_timeseries.tsv") for p in downloaded)  # confounds not staged
    # A record dropped by the filters is found by name, but its BOLD is an empty placeholder.
    dropped_bold = next(p for p in bold_files(cache) if "sub-02" in p.name)
    assert dropped_bold.stat().st_size == 0
    assert (served.root / dropped_bold.relative_to(cache)).stat().st_size > 0

    served.log.clear()
    again = _locate(served.url, source=Url(cache=str(cache)))
    pd.testing.assert_frame_equal(again.frame, remote.frame)
    assert served.downloads() == []  # the listing is revalidated (304), nothing is sent
    assert served.log == [("/files.tsv", 304)]


def test_a_file_that_fails_its_sha256_or_is_missing_drops_its_record(served, tmp_path, monkeypatch):
    monkeypatch.setenv("NISHARD_CACHE", str(tmp_path / "home-cache"))
    write_listing(served.root)
    bolds = bold_files(served.root)
    # Same size, other bytes: only the checksum can tell.
    corrupt = bolds[0]
    original = corrupt.read_bytes()
    corrupt.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    missing = next(
        served.root.glob(f"sub-*/**/func/{bolds[1].name.split('_space')[0]}*mask.nii.gz")
    )
    missing.unlink()
    # A server that is busy at first: answered on the second try, the record is kept.
    busy = "/" + bold_files(served.root)[2].relative_to(served.root).as_posix()
    served.flaky[busy] = 1

    records = _locate(served.url, source=Url(retries=1))
    port = served.url.rsplit(":", 1)[1].strip("/")
    cache = tmp_path / "home-cache" / "url" / f"127.0.0.1_{port}"
    assert records.root == str(cache)
    assert len(records) == len(bolds) - 2
    reasons = dict(zip(records.dropped["record"], records.dropped["reason"], strict=True))
    assert len(reasons) == 2
    sha_reason = next(r for r in reasons.values() if corrupt.name in r)
    assert "sha256 mismatch" in sha_reason and sha_reason.startswith("could not fetch bold")
    missing_reason = next(r for r in reasons.values() if missing.name in r)
    assert "HTTP 404" in missing_reason and missing_reason.startswith("could not fetch mask")
    # No partial file: the rejected download's placeholder is still empty, no temporary left.
    assert (cache / corrupt.relative_to(served.root)).stat().st_size == 0
    assert list(cache.rglob("*.part")) == []
    assert [code for path, code in served.log if path == busy] == [503, 200]
    assert any(busy.endswith(p.name) for p in map(Path, records.frame["bold"]))
    assert sum(1 for path, _ in served.log if path.endswith(missing.name)) == 1  # no retry

    corrupt.write_bytes(original)  # the server is fixed: the record comes back
    records = _locate(served.url, source=Url(retries=0))
    assert len(records) == len(bolds) - 1
    fixed = cache / corrupt.relative_to(served.root)
    assert fixed.read_bytes() == original


def test_a_listing_can_be_inline_and_is_checked(served, tmp_path):
    listing = write_listing(served.root, out=tmp_path / "files.tsv", checksums=False)
    lines = tuple(listing.read_text().splitlines())
    assert lines[0] == "path\tsize\tsha256" and lines[1].endswith("\t")  # sha256 unknown
    records = _locate(served.url, source=Url(listing=lines, cache=str(tmp_path / "cache")))
    assert len(records) == len(bold_files(served.root))
    assert ("/files.tsv", 200) not in served.log

    files = parse_listing("# made by hand\nsub-01/a.nii.gz 12\nb.json\t-\t" + "A" * 64 + "\n")
    assert files["sub-01/a.nii.gz"].size == 12 and files["sub-01/a.nii.gz"].sha256 is None
    assert files["b.json"].size is None and files["b.json"].sha256 == "a" * 64
    for bad, why in [
        ("../outside.json\t1\t", "unsafe"),
        ("/etc/passwd\t1\t", "unsafe"),
        ("a.json\tbig\t", "not a number"),
        ("a.json\t1\tabc", "64 hex"),
        ("a.json\na.json", "listed twice"),
    ]:
        with pytest.raises(ns.SpecError, match=why):
            parse_listing(bad, "test listing")

    foreign = tmp_path / "someone-elses"
    foreign.mkdir()
    (foreign / "data.txt").write_text("keep me")
    with pytest.raises(ns.SpecError, match="not empty and no url cache"):
        Url(cache=str(foreign)).prepare(served.url)
    with pytest.raises(ns.SpecError, match="holds http"):
        Url(cache=str(tmp_path / "cache")).prepare("http://127.0.0.1:1/other/")


def test_sources_round_trip_through_a_spec():
    for entry in [
        {"name": "url", "listing": "files.tsv", "retries": 1, "eager": ["*.json"]},
        {"name": "url", "listing": ["a.json\t2\t"], "cache": "/tmp/c", "timeout": 5},
        {"name": "datalad", "clone_to": "ds", "jobs": 2},
    ]:
        raw = {
            "input": {"path": "data", "source": entry},
            "transforms": [],
            "output": {"path": "shards"},
        }
        pipeline = ns.parse_spec(raw)
        source = pipeline.source
        assert type(source) is SOURCES[entry["name"]]
        assert pipeline.spec["input"]["source"] == source.to_dict()
        assert all(source.to_dict()[key] == value for key, value in entry.items())
        options = {k: v for k, v in source.to_dict().items() if k != "name"}
        assert type(source)(**options) == source
    bad = {"input": {"path": "d", "source": {"name": "url", "retries": "3"}}}
    with pytest.raises(ns.SpecError, match="retries must be an integer"):
        ns.parse_spec({**bad, "transforms": [], "output": {"path": "s"}})


@pytest.fixture
def annex(monkeypatch):
    """DataLad's API, with a git identity (CI has none); skips without git-annex."""
    if shutil.which("git-annex") is None:
        pytest.skip("git-annex is not on PATH (apt-get install git-annex)")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "nishard tests")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "tests@nishard.invalid")
    import datalad.api

    return datalad.api


def test_datalad_gets_only_the_staged_files_of_kept_records(annex, tiny, tmp_path):
    quiet = {"result_renderer": "disabled"}
    origin = annex.create(str(tmp_path / "origin"), **quiet)
    shutil.copytree(tiny, origin.path, dirs_exist_ok=True)
    _forget_age(Path(origin.path), "02")
    origin.save(message="tiny dataset", **quiet)
    clone = Path(annex.clone(source=origin.path, path=str(tmp_path / "clone"), **quiet).path)
    bolds = bold_files(clone)
    # Content is absent from a fresh clone: the files are dangling links, seen by name.
    assert len(bolds) == len(bold_files(tiny)) and all(b.is_symlink() for b in bolds)
    assert not any(os.path.exists(b) for b in bolds)

    local = _locate(origin.path)
    records = _locate(clone, source=DataLad())
    assert list(records.frame.index) == list(local.frame.index)
    pd.testing.assert_frame_equal(records.dropped, local.dropped)
    assert records.frame["t_r"].notna().all()  # the sidecars were got before the scan
    staged = _staged(records, clone)
    annexed = [p for p in clone.rglob("*") if p.is_symlink() and ".git" not in p.parts]
    # The annex stores equal content once (all masks are alike here): compare its objects.
    present = {p.resolve() for p in annexed if os.path.exists(p)}
    assert present == {(clone / rel).resolve() for rel in staged | _eager(clone)}
    assert not any(os.path.exists(p) for p in clone.glob("sub-*/**/*_timeseries.tsv"))
    assert not any(os.path.exists(p) for p in clone.glob("sub-02/**/*_bold.nii.gz"))
    for rel in staged:
        assert filecmp.cmp(clone / rel, Path(tiny, rel), shallow=False), rel

    # A staged file whose content no remote has: its record alone is dropped, with why.
    confounds = sorted(clone.glob("sub-01/**/func/*_timeseries.tsv"))
    origin.drop(path=str(Path(origin.path, confounds[0].relative_to(clone))), reckless="kill")
    more = _locate(clone, source=DataLad(), stage=(*STAGE, "confounds"))
    assert len(more) == len(records) - 1
    [reason] = [r for r in more.dropped["reason"] if "could not fetch" in r]
    assert reason.startswith(f"could not fetch confounds {confounds[0]}: datalad get:")
    assert all(os.path.exists(p) for p in more.frame["confounds"])


def test_datalad_clones_a_url_or_path_into_clone_to(annex, tiny, tmp_path):
    quiet = {"result_renderer": "disabled"}
    origin = annex.create(str(tmp_path / "origin"), **quiet)
    shutil.copytree(tiny, origin.path, dirs_exist_ok=True)
    origin.save(message="tiny dataset", **quiet)
    source = DataLad(clone_to=str(tmp_path / "cloned"))
    records = _locate(origin.path, source=source)
    assert records.root == str(tmp_path / "cloned")
    assert len(records) == len(bold_files(tiny))
    assert all(os.path.exists(p) for p in records.frame["bold"])
    again = _locate(origin.path, source=source)  # installed there already: reused
    pd.testing.assert_frame_equal(again.frame, records.frame)


def test_datalad_says_what_is_missing(tmp_path, monkeypatch):
    # A PATH with git alone: the source must name git-annex before running anything.
    folder = tmp_path / "bin"
    folder.mkdir()
    git = shutil.which("git")
    if git is not None:
        (folder / "git").symlink_to(git)
    monkeypatch.setenv("PATH", str(folder))
    if importlib.util.find_spec("datalad") is None:
        missing = "'datalad' Python package"
    else:
        missing = "'git-annex' program" if git else "'git' program"
    with pytest.raises(ns.SpecError, match=missing):
        DataLad().prepare(tmp_path)
    with pytest.raises(ns.SpecError, match=missing):
        DataLad().fetch([str(tmp_path / "absent.nii.gz")])
    # A dataset to clone: refused before the clone, which makes no folder.
    with pytest.raises(ns.SpecError, match=missing):
        DataLad(clone_to=str(tmp_path / "clone")).prepare("https://example.invalid/ds")
    assert not (tmp_path / "clone").exists()
