"""A headless browser's view of a page: a screenshot and the rendered DOM."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image


def _browse(chromium: str, page: Path, *args: str) -> subprocess.CompletedProcess:
    home = page.parent / ".chromium-home"  # its profile and crash reports, not the user's
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={home}",
         *args, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=True,
        env={**os.environ, "HOME": str(home)},
    )  # fmt: skip


def screenshot(chromium: str, page: Path, out: Path, size: str = "1400,2000") -> Path:
    """A headless screenshot of ``page`` into ``out`` (a PNG)."""
    _browse(chromium, page, f"--screenshot={out}", f"--window-size={size}")
    assert out.is_file(), f"chromium wrote no screenshot of {page}"
    return out


def rendered_text(chromium: str, page: Path) -> str:
    """The page's DOM after the browser rendered it (``--dump-dom``)."""
    return _browse(chromium, page, "--dump-dom").stdout


def pixel_spread(png: Path) -> float:
    """The standard deviation of a screenshot's grey levels: a blank page's is about 0."""
    return float(np.asarray(Image.open(png).convert("L"), dtype=float).std())
