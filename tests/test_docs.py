"""The README runs: every code block of README.md and docs/*.md, against the demo's data.

One test per block, named ``page:line`` (the line of its opening fence):

- ``python`` blocks of a page run in order in one namespace, as a reader pastes them top
  to bottom (a later block may use ``records`` from an earlier one), in a folder laid out
  as ``make demo`` leaves the repository root: ``nishard-demo/data`` (the synthetic
  fMRIPrep derivatives), ``nishard-demo/spec.yaml`` and ``nishard-demo/shards``. A block
  that raises fails, and so does one that reads a path or a shard range the demo does not
  write, or that calls an API warning it is deprecated.
- ``yaml`` blocks: a whole pipeline spec (``input``, ``transforms``, ``output``) is parsed
  with :func:`nishard.spec.parse_spec` as if saved in that folder, then built; part of a
  spec (some of those sections) is laid over the demo's own spec, parsed and built, so its
  keys, names and products meet the demo's data (a key that parses with a deprecation
  warning fails). Shard file names a block mentions (in a
  comment: ``train-timeseries-000000.tar``) must be among the shards built. Other YAML
  must parse, and each ``nishard-demo/...`` path in it must exist.
- ``bash`` (``sh``, ``shell``, ``console``) blocks are not executed: they set up
  environments, generate data or submit jobs. Their ``nishard ...`` command lines are
  parsed by the command line's own argument parser, so that a renamed subcommand or
  option fails; a shell block without one is skipped, saying so.

A block that needs what a test machine lacks (a cluster, a network, a GPU) says so on the
line before its fence; the test skips it with that reason, and a label without a reason
fails::

    <!-- docs-test: skip (needs a GPU) -->

A block labelled ``<!-- docs-test: slurm -->`` is marked ``slurm``: it runs on the one-node
SLURM of ``scripts/slurm/start.sh`` (the ``slurm_cluster`` fixture of tests/conftest.py),
and skips with that fixture's reason where SLURM cannot be started.

The README's section "Your own fMRIPrep folder" (``OWN_SECTION``) is not run block by
block in the demo's folder: :func:`test_own_fmriprep_folder` runs all its blocks, top to
bottom, in a folder of their own holding ``my-study/``, a study laid out as fMRIPrep 24.1
leaves it (tests/fmriprep_layout.py). There every block runs, shell blocks included
(``bash -eu -o pipefail``, the venv's ``nishard`` first on ``PATH``), Python blocks in one
namespace of a fresh interpreter (a reader's script); a YAML block is saved under the file
name its first line gives (``# fmriprep-spec.yaml``), for the shell blocks after it; and the
builds it made must have written every record they kept.

The demo's data is made once per session by the demo's own generator and spec, with 8
subjects of 1 run instead of 24 of 2 (about 15 s with the build), and shards of one sample,
so that its 6 training runs make at least the training shards the blocks name (the demo's
34, in shards of 128 MB, make 4).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import linecache
import os
import re
import select
import shlex
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEMO = "nishard-demo"
LANGUAGES = {"python": "python", "py": "python", "yaml": "yaml", "yml": "yaml",
             "bash": "shell", "sh": "shell", "shell": "shell", "console": "shell"}  # fmt: skip
SPEC_SECTIONS = ("input", "transforms", "output", "execution")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)")
LABEL = re.compile(r"<!--\s*docs-test:(?P<text>.*?)-->")
#: The label of a block that runs on the tests' one-node SLURM.
SLURM = "slurm"
SKIP = re.compile(r"^\s*skip\s*\((?P<reason>.*\S.*)\)\s*$")
#: A shard file as the build names it: ``<split>[-<family>]-000000<ext>``.
SHARD_NAME = re.compile(r"\b[\w]+(?:-[\w]+)*-\d{6}\.(?:tar|tfrecord|h5|zarr\.zip)\b")
#: Shell operators that end one command of a line.
OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1"}
#: The README section run as a whole on an fMRIPrep-shaped study (test_own_fmriprep_folder).
OWN_SECTION = "Your own fMRIPrep folder"
#: A level-2 Markdown heading: the sections blocks belong to.
HEADING = re.compile(r"^##[ \t]+(?P<title>[^#].*?)[ \t#]*$")
#: The first line of a YAML block of that section: the file it is saved as.
SAVED_AS = re.compile(r"^#\s*(?P<name>[\w.-]+\.ya?ml)\s*$")


# -- blocks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str  # python, yaml or shell
    code: str
    label: str | None = None  # the text of a ``docs-test:`` comment just before the fence

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT).as_posix()}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The python, yaml and shell blocks of a Markdown page, in page order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        end = i + 1  # a closing fence: the same character, at least as many, nothing else
        while end < len(lines) and not re.fullmatch(
            rf"[ \t]*{re.escape(fence)}{re.escape(fence[0])}*[ \t]*", lines[end]
        ):
            end += 1
        language = LANGUAGES.get(opening["info"].lower())
        if language:
            # A fence indented in a list item: its lines carry the same indent.
            body = "\n".join(line[indent:] for line in lines[i + 1 : end])
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            label = match["text"].strip() if (match := LABEL.search(before)) else None
            found.append(Block(page, i + 1, language, body + "\n", label))
        i = end + 1
    return found


def nishard_commands(code: str) -> Iterator[list[str]]:
    """The ``nishard`` command lines of a shell block, as argument lists (program first)."""
    code = re.sub(r"\\\n", " ", code)  # continuation lines
    for line in code.splitlines():
        line = re.sub(r"^\s*\$\s+", "", line)  # a console prompt
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token not in OPERATORS:
                command.append(token)
                continue
            words = [w for w in command if not re.fullmatch(r"\w+=.*", w)]  # VAR=value
            if words and (words[0] == "nishard" or words[0].endswith("/nishard")):
                yield words
            command = []


def section_of(block: Block) -> str | None:
    """The title of the level-2 section (``## ...``) a block stands in, outside fences."""
    title, closing = None, None  # closing: the pattern that ends the fence we are in
    for line in block.page.read_text(encoding="utf-8").splitlines()[: block.line - 1]:
        opening = FENCE.match(line)
        if closing is None and opening:
            fence = opening["fence"]
            closing = rf"[ \t]*{re.escape(fence)}{re.escape(fence[0])}*[ \t]*"
        elif closing is not None and re.fullmatch(closing, line):
            closing = None
        elif closing is None and (heading := HEADING.match(line)):
            title = heading["title"]
    return title


BLOCKS = [block for page in PAGES for block in blocks_of(page)]
#: The blocks of the README's own-data section, in page order: run together on their study.
OWN_BLOCKS = [b for b in BLOCKS if b.page.name == "README.md" and section_of(b) == OWN_SECTION]


def blocks(language: str) -> list:
    chosen = [b for b in BLOCKS if b.language == language and b not in OWN_BLOCKS]
    return [pytest.param(b, id=b.id, marks=[pytest.mark.slurm] if b.label == SLURM else [])
            for b in chosen]  # fmt: skip


def skip_if_labelled(block: Block) -> None:
    """Skip a block labelled ``skip (reason)``; fail on any other label but ``slurm``."""
    if block.label is None or block.label == SLURM:  # marked slurm (blocks()): it runs
        return
    match = SKIP.match(block.label)
    if not match:
        pytest.fail(
            f"{block.id}: docs-test label {block.label!r} is not 'skip (reason)' "
            "(every skipped block says why)",
            pytrace=False,
        )
    pytest.skip(f"{block.id}: {match['reason'].strip()}")


# -- the demo's data ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A folder as ``make demo`` leaves the repository root, made by the demo's own
    generator and spec: ``nishard-demo/data``, ``nishard-demo/spec.yaml``,
    ``nishard-demo/shards`` (8 subjects of 1 run; shards of one sample)."""
    from nishard.datasets import SIZES, generate
    from nishard.demo import demo_spec
    from nishard.pipeline import build

    root = tmp_path_factory.mktemp("docs")
    demo = root / DEMO
    generate(demo / "data", size="demo", seed=0, subjects=8, runs=1)
    spec = demo_spec(f"{SIZES['demo'].resolution_mm:g}", 2)
    spec["output"]["shards"] = {"max_samples": 1}
    (demo / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    manifest = build(demo / "spec.yaml", progress=False)
    assert manifest["records"]["written"] == 8, manifest["records"]
    return root


@pytest.fixture
def in_demo_root(demo_root, monkeypatch) -> Path:
    monkeypatch.chdir(demo_root)
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the learners' reports plot
    return demo_root


DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


class DeprecatedInDocs(AssertionError):
    """A block ran, but through an API that warns it is deprecated."""


@dataclass
class Page:
    """What the Python blocks of one page share: a namespace, and which blocks ran in it."""

    namespace: dict = field(default_factory=lambda: {"__name__": "__main__"})
    errors: dict[int, str | None] = field(default_factory=dict)  # line: error (None: ran)


@pytest.fixture(scope="session")
def pages() -> dict[Path, Page]:
    return {}


def run_python(block: Block, page: Page) -> None:
    """Run a block in its page's namespace, recording whether it raised."""
    # Blank lines before the code put each line at its line in the page, so a traceback
    # names the line a reader sees; the file name is the block's, in linecache, so that a
    # traceback quotes the block's lines.
    filename = f"{block.page} [block at line {block.line}]"
    source = "\n" * block.line + block.code
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    code = compile(source, filename, "exec")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(code, page.namespace)  # running the docs is the point
        # A deprecated call written in the block is a page that shows yesterday's API;
        # other warnings go on to pytest as they came.
        stale = []
        for w in caught:
            if w.filename == filename and issubclass(w.category, DEPRECATIONS):
                stale.append(f"line {w.lineno}: {w.category.__name__}: {w.message}")
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if stale:
            raise DeprecatedInDocs("the block calls a deprecated API\n" + "\n".join(stale))
    except BaseException as err:
        page.errors[block.line] = f"{type(err).__name__}: {err}"
        raise
    page.errors[block.line] = None


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("block", blocks("python"))
def test_python_block(block: Block, pages, in_demo_root) -> None:
    """A Python block runs after the page's earlier ones, in the demo's folder."""
    page = pages.setdefault(block.page, Page())
    earlier = [b for b in BLOCKS if b.page == block.page and b.language == "python"
               and b not in OWN_BLOCKS]  # fmt: skip
    for before in earlier[: earlier.index(block)]:
        if before.line not in page.errors and before.label is None:  # run alone (-k)
            with contextlib.suppress(Exception):
                run_python(before, page)
    skip_if_labelled(block)
    message = None
    try:
        run_python(block, page)
    except Exception as err:
        # The block's own traceback, from its first line on (pytest's would print the
        # whole page above the failing line).
        tb = err.__traceback__
        while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(str(block.page)):
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(err), err, tb)) if tb else ""
        failed = [f"  {block.page.name}:{line}: {e}" for line, e in page.errors.items()
                  if e and line < block.line]  # fmt: skip
        if failed:
            text += "\nEarlier blocks of this page failed:\n" + "\n".join(failed)
        message = f"{block.id}: {type(err).__name__}: {err}\n\n{text}"
    if message:  # out of the except clause: no "during handling" chain in the report
        pytest.fail(message, pytrace=False)


@pytest.mark.parametrize("block", blocks("yaml"))
def test_yaml_block(block: Block, in_demo_root, tmp_path) -> None:
    """A spec is parsed and built; part of one, laid over the demo's spec; other YAML parsed."""
    skip_if_labelled(block)
    content = yaml.safe_load(block.code)
    assert content is not None, f"{block.id}: an empty YAML block"
    if isinstance(content, dict) and set(content) & set(SPEC_SECTIONS):
        check_spec(block, content, in_demo_root, tmp_path)
    else:
        for path in demo_paths(content):
            assert list(in_demo_root.glob(path)), f"{block.id}: {path} is not in the demo"


@pytest.mark.parametrize("block", blocks("shell"))
def test_shell_block(block: Block) -> None:
    """A shell block's ``nishard`` lines are valid command lines (the block is not run)."""
    skip_if_labelled(block)
    from nishard.cli import parser

    commands = list(nishard_commands(block.code))
    if not commands:
        pytest.skip(f"{block.id}: shell blocks are not run; no nishard command to check")
    for words in commands:
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                parser().parse_args(words[1:])
        except SystemExit as exit_:
            assert exit_.code in (0, None), f"{block.id}: {shlex.join(words)}\n{stderr.getvalue()}"


def check_spec(block: Block, content: dict, root: Path, tmp_path: Path) -> None:
    """Parse a spec (or a part of one over the demo's), build it elsewhere, check the names."""
    from nishard.pipeline import build
    from nishard.spec import parse_spec

    if {"input", "transforms", "output"} <= set(content):
        spec, base = content, root  # saved beside nishard-demo/, where `make demo` ran
    else:
        spec, base = over_demo_spec(content, root / DEMO / "spec.yaml"), root / DEMO
    with warnings.catch_warnings():  # a deprecated key is a stale page: it fails
        for category in DEPRECATIONS:
            warnings.simplefilter("error", category)
        pipeline = parse_spec(spec, base=base)
    # Built into a folder of its own, so that no block's build resumes another's.
    manifest = build(pipeline.with_overrides(output=tmp_path / "out"), progress=False)
    counts = manifest["records"]
    assert counts["written"] > 0 and counts["quarantined"] == 0, f"{block.id}: {counts}"
    built = {shard["name"] for shard in manifest["shards"]}
    named = set(SHARD_NAME.findall(block.code))
    assert named <= built, f"{block.id} names shards not built: {sorted(named - built)}"


def over_demo_spec(part: dict, demo_spec: Path) -> dict:
    """The demo's spec with a block's sections laid over it, key by key within a section."""
    spec = copy.deepcopy(yaml.safe_load(demo_spec.read_text()))
    for section, value in part.items():
        if isinstance(value, dict) and isinstance(spec.get(section), dict):
            spec[section] = {**spec[section], **value}
        else:
            spec[section] = value
    return spec


def demo_paths(content) -> Iterator[str]:
    """Strings in parsed YAML that are paths under ``nishard-demo/``."""
    if isinstance(content, dict):
        content = [*content.keys(), *content.values()]
    if isinstance(content, list):
        for item in content:
            yield from demo_paths(item)
    elif isinstance(content, str) and content.startswith(f"{DEMO}/"):
        yield content


# -- the README's own-data section ----------------------------------------------------------


@pytest.fixture
def own_study(tmp_path, monkeypatch) -> Path:
    """The working folder of the README's own-data section: ``my-study/`` in it, laid out as
    fMRIPrep 24.1 leaves a study (tests/fmriprep_layout.py); the venv's ``nishard`` first on
    ``PATH``; caches inside it."""
    from tests.fmriprep_layout import fmriprep_study

    fmriprep_study(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NISHARD_CACHE", str(tmp_path / ".nishard-cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


@pytest.mark.slow
def test_own_fmriprep_folder(own_study, tmp_path_factory) -> None:
    """Every block of "Your own fMRIPrep folder" runs, in page order, on an fMRIPrep-shaped
    study: shell blocks run, YAML blocks are saved, Python blocks share one namespace in a
    fresh interpreter (as a reader's script: no JAX threads of earlier tests under the
    DataLoader's fork, no torch thread setting left behind); the builds write every record
    they keep."""
    assert OWN_BLOCKS, f"README.md has no section {OWN_SECTION!r} with code blocks"
    log = tmp_path_factory.mktemp("kernel") / "output.txt"
    with python_kernel(own_study, log) as run_block:
        for block in OWN_BLOCKS:
            if block.label is not None:
                pytest.fail(f"{block.id}: labelled {block.label!r}, but every block of "
                            f"{OWN_SECTION!r} runs", pytrace=False)  # fmt: skip
            if block.language == "shell":
                run_shell(block, own_study)
            elif block.language == "yaml":
                save_yaml(block, own_study)
            elif error := run_block(block):
                output = log.read_text(errors="replace")[-4000:]
                pytest.fail(f"{block.id}: {error}\nits output:\n{output}", pytrace=False)
    manifests = [p for p in own_study.rglob("manifest.json") if "my-study" not in p.parts]
    assert manifests, f"{OWN_SECTION!r} built no shards"
    for path in manifests:
        counts = json.loads(path.read_text())["records"]
        assert counts["written"] > 0 and counts["quarantined"] == 0, f"{path}: {counts}"


#: The interpreter that runs the own-data section's Python blocks in one namespace. A
#: request is a JSON line on stdin (``filename``, ``line``, ``code``); the answer a JSON line
#: (``error``: None, or the block's traceback) on its first stdout, while the blocks' own
#: output (and their DataLoader workers') goes to stderr. As :func:`run_python`, a block
#: that calls a deprecated API fails, and a traceback starts at the block's own line.
KERNEL = """
import json, linecache, os, sys, traceback, warnings
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr
namespace = {"__name__": "__main__"}
deprecations = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
for request in iter(sys.stdin.readline, ""):  # a line as soon as it comes
    block = json.loads(request)
    filename, source = block["filename"], "\\n" * block["line"] + block["code"]
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    error = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(compile(source, filename, "exec"), namespace)
        stale = [f"line {w.lineno}: {w.category.__name__}: {w.message}" for w in caught
                 if w.filename == filename and issubclass(w.category, deprecations)]
        for w in caught:
            print(warnings.formatwarning(w.message, w.category, w.filename, w.lineno), end="")
        if stale:
            error = "the block calls a deprecated API\\n" + "\\n".join(stale)
    except BaseException as err:
        tb = err.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != filename:
            tb = tb.tb_next
        error = "".join(traceback.format_exception(type(err), err, tb))
    answers.write(json.dumps({"error": error}) + "\\n")
    answers.flush()
answers.close()
"""


@contextlib.contextmanager
def python_kernel(folder: Path, log: Path, timeout: float = 600) -> Iterator:
    """A fresh interpreter in ``folder`` running :data:`KERNEL`; yields ``run(block)``,
    which returns None when the block ran, else its error. Its output goes to ``log``."""
    with log.open("w") as output:
        kernel = subprocess.Popen(
            [sys.executable, "-c", KERNEL], cwd=folder, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=output, text=True,
        )  # fmt: skip

        def run(block: Block) -> str | None:
            request = {"filename": f"{block.page} [block at line {block.line}]",
                       "line": block.line, "code": block.code}  # fmt: skip
            kernel.stdin.write(json.dumps(request) + "\n")
            kernel.stdin.flush()
            ready, _, _ = select.select([kernel.stdout], [], [], timeout)
            answer = kernel.stdout.readline() if ready else ""
            if not answer:
                status = kernel.poll()
                kernel.kill()  # hung (or dead): nothing more of it to wait for
                return f"no answer in {timeout:g} s (exit status {status})"
            return json.loads(answer)["error"]

        try:
            yield run
        finally:
            kernel.stdin.close()
            try:
                kernel.wait(timeout=60)
            except subprocess.TimeoutExpired:
                kernel.kill()
                kernel.wait()


def run_shell(block: Block, folder: Path) -> None:
    """Run a shell block with bash, stopping at its first failing command."""
    done = subprocess.run(
        ["bash", "-eu", "-o", "pipefail", "-c", block.code],
        cwd=folder, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode:
        pytest.fail(
            f"{block.id}: exit status {done.returncode}\n{block.code}\n"
            f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}",
            pytrace=False,
        )


def save_yaml(block: Block, folder: Path) -> None:
    """Save a YAML block as the file its first line names; a spec must parse, warning-free."""
    from nishard.spec import parse_spec

    first = block.code.splitlines()[0]
    named = SAVED_AS.match(first)
    assert named, f"{block.id}: its first line names the file it is saved as ('# spec.yaml')"
    content = yaml.safe_load(block.code)
    if isinstance(content, dict) and set(content) & set(SPEC_SECTIONS):
        with warnings.catch_warnings():  # a deprecated key is a stale page: it fails
            for category in DEPRECATIONS:
                warnings.simplefilter("error", category)
            parse_spec(content, base=folder)
    (folder / named["name"]).write_text(block.code, encoding="utf-8")


def test_own_section_is_found(tmp_path) -> None:
    """The own-data section's blocks are found, all three kinds, and left out of the
    demo-folder tests; a heading inside a fence starts no section."""
    assert {"python", "yaml", "shell"} <= {b.language for b in OWN_BLOCKS}
    generic = {p.values[0] for language in ("python", "yaml", "shell") for p in blocks(language)}
    assert not generic & set(OWN_BLOCKS)
    page = tmp_path / "sample.md"
    page.write_text("## A\n```bash\n## not a heading\n```\n```python\nx = 1\n```\n"
                    "### A.1\n## B #\n```yaml\na: 1\n```\n")  # fmt: skip
    assert [section_of(b) for b in blocks_of(page)] == ["A", "A", "B"]
    assert SAVED_AS.match("# fmriprep-spec.yaml")["name"] == "fmriprep-spec.yaml"


def test_blocks_are_found(tmp_path) -> None:
    """The collector sees the README's blocks (a broken fence parser would pass vacuously)."""
    readme = [b for b in BLOCKS if b.page.name == "README.md"]
    assert {"python", "yaml"} <= {b.language for b in readme}
    assert all(b.code.strip() for b in readme)
    sample = (
        "x\n<!-- docs-test: skip (no GPU) -->\n```yaml\na: 1\n```\n  ```python\n  b = 2\n  ```\n"
    )
    page = tmp_path / "sample.md"
    page.write_text(sample)
    found = blocks_of(page)
    assert [(b.line, b.language, b.code, b.label) for b in found] == [
        (3, "yaml", "a: 1\n", "skip (no GPU)"),
        (6, "python", "b = 2\n", None),
    ]
    # The cluster block is marked slurm (it runs on the tests' SLURM), not skipped.
    marked = [p for p in blocks("yaml") if p.values[0].label == SLURM]
    assert marked and all([m.name for m in p.marks] == ["slurm"] for p in marked)
    readme_block = readme[0]
    for label in ("skip", "skip ()", "skip: no GPU", "run"):  # no reason, or not a skip
        with pytest.raises(pytest.fail.Exception, match="every skipped block says why"):
            skip_if_labelled(Block(readme_block.page, 1, "yaml", "a: 1\n", label))
    with pytest.raises(pytest.skip.Exception, match=r"README.md:1: no GPU \(CUDA\)"):
        skip_if_labelled(Block(readme_block.page, 1, "yaml", "a: 1\n", " skip (no GPU (CUDA)) "))
    line = "nishard build s.yaml --jobs 2 && VAR=1 .venv/bin/nishard plan s.yaml | less # x"
    assert list(nishard_commands(f"$ {line}\n")) == [
        ["nishard", "build", "s.yaml", "--jobs", "2"],
        [".venv/bin/nishard", "plan", "s.yaml"],
    ]
