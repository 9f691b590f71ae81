"""The layers of docs/architecture.md, as a training process sees them."""

from __future__ import annotations

import json
import subprocess
import sys

#: What a process that only reads shards must not load: the build and its libraries.
BUILD_SIDE = ("nishard.records", "nishard.transforms", "nishard.workflow", "nishard.builder",
              "nishard.pipeline", "nishard.spec", "pandas", "scipy", "nibabel")  # fmt: skip


def _loaded(statement: str) -> set[str]:
    """Modules of BUILD_SIDE that a fresh interpreter has loaded after ``statement``."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    names = json.loads(out.splitlines()[-1])
    return {n for n in names if n.split(".")[0] in BUILD_SIDE or n.startswith(BUILD_SIDE)}


def test_the_stream_loads_nothing_of_the_build():
    assert _loaded("import nishard.stream") == set()
    assert _loaded("import nishard.archives.decoders, nishard.archives.manifest") == set()


def test_the_package_root_lists_what_it_serves():
    import nishard as ns

    lazy = {"__version__", *ns._NAMES, *ns._MODULES, *ns._NAMESPACES}
    assert set(ns.__all__) == lazy
    assert all(getattr(ns, name) is not None for name in ns.__all__)


def test_the_package_root_loads_on_first_use():
    assert _loaded("import nishard") == set()
    # ...and the names are there when asked for: a build-side name brings its layer.
    assert "nishard.builder" in _loaded("import nishard as ns; ns.write")
