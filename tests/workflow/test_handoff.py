"""Large products cross from workers to the writer through shared memory, unchanged."""

import os
import subprocess

import ml_dtypes
import numpy as np
import pytest

from nishard.records.table import Record
from nishard.workflow.handoff import LARGE, Shared, handoff_folder, receive, share
from nishard.workflow.plan import Outcome


def test_large_arrays_go_through_files_that_vanish_once_mapped():
    rng = np.random.default_rng(0)
    products = {
        "bold": rng.standard_normal((64, LARGE // 256)).astype(np.float32),  # 1 MiB
        "small": np.arange(5),
        "half": np.ones(LARGE, dtype=ml_dtypes.bfloat16),  # np.load could not restore it
        "table": ("not", "an array"),
    }
    outcome = Outcome(Record("r", {}, {}), products, None, {})
    with handoff_folder() as folder:
        sent = share(outcome, folder)
        assert isinstance(sent.products["bold"], Shared)
        assert sent.products["small"] is products["small"]
        assert sent.products["half"] is products["half"]
        assert len(list(folder.iterdir())) == 1
        back = receive(sent)
        assert not list(folder.iterdir())  # unlinked as soon as it is mapped
        np.testing.assert_array_equal(back.products["bold"], products["bold"])
        assert back.products["table"] == products["table"]
    assert not folder.exists()


def test_failed_outcomes_pass_through():
    outcome = Outcome(Record("r", {}, {}), None, None, {})
    with handoff_folder() as folder:
        assert receive(share(outcome, folder)) is outcome


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")
def test_a_full_handoff_folder_sends_the_array_through_the_pipe(tmp_path):
    # The README's promise: a full /dev/shm slows the local executor, it does not stop it.
    folder = tmp_path / "shm"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], check=True)
    try:
        bold = np.random.default_rng(1).standard_normal((4, LARGE)).astype(np.float32)  # 16 MiB
        sent = share(Outcome(Record("r", {}, {}), {"bold": bold}, None, {}), folder)
        assert sent.products["bold"] is bold  # kept in the outcome, to be pickled
        assert not list(folder.iterdir())  # the partial file is gone
        np.testing.assert_array_equal(receive(sent).products["bold"], bold)
    finally:
        subprocess.run(["umount", str(folder)], check=True)
