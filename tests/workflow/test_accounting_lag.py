"""slurm-array's watch waits for sacct to list each element's end after the merge job's.

The real cluster's run of this (tests/workflow/test_slurm_array.py) once saw the merge job
ended while sacct still listed a failed element as pending: slurmdbd records an element's
end a moment after it. These answers replay that order without a cluster.
"""

from __future__ import annotations

from nishard.workflow import task_runners
from nishard.workflow.task_runners import SlurmArray


def _replay(monkeypatch, answers):
    calls = []

    def job_states(jobs):
        calls.append(list(jobs))
        return answers[min(len(calls), len(answers)) - 1]

    monkeypatch.setattr(task_runners, "job_states", job_states)
    return calls


def test_an_element_sacct_has_not_closed_yet_is_asked_again(monkeypatch, tmp_path):
    (tmp_path / "task-7_2.log").write_text("IsADirectoryError: all-000002.tar\n")
    ended = {"7_0": "COMPLETED", "7_1": "COMPLETED", "8": "COMPLETED"}
    answers = [
        {**ended, "7_2": "RUNNING", "8": "PENDING"},
        {**ended, "7_2": "PENDING"},  # the merge ended; the element's end not yet listed
        {**ended},  # nor here: not listed at all
        {**ended, "7_2": "FAILED"},
    ]
    calls = _replay(monkeypatch, answers)
    runner = SlurmArray(poll=0.0)
    failures = runner._watch({"7": {0: 0, 1: 1, 2: 2}}, "8", 3, False, tmp_path)
    assert len(calls) == 4
    [failure] = failures
    assert failure.task == 2 and failure.reason.startswith("FAILED")
    assert "IsADirectoryError" in failure.reason


def test_the_wait_for_the_accounting_is_bounded(monkeypatch, tmp_path):
    (tmp_path / "task-7_0.log").write_text("")
    calls = _replay(monkeypatch, [{"8": "COMPLETED", "7_0": "PENDING"}])
    monkeypatch.setattr(task_runners, "ACCOUNTING_LAG", 0.05)
    failures = SlurmArray(poll=0.01)._watch({"7": {0: 0}}, "8", 1, False, tmp_path)
    assert len(calls) > 1  # asked again, then gave up and told what sacct said
    assert [f.task for f in failures] == [0] and failures[0].reason.startswith("PENDING")
