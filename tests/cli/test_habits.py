"""A command line that fits habits: --version, help for every argument, one --quiet for
every command, plain progress lines in logs, an exit status for quarantined records,
"did you mean" for values."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from nishard._version import __version__
from nishard.cli import QUARANTINED, main, parser
from tests.helpers import bold_files, write_spec


def _commands() -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"nishard {__version__}"


def test_every_argument_of_every_command_has_help_and_every_command_a_quiet():
    commands = _commands()
    assert len(commands) >= 10
    for name, command in commands.items():
        helpless = [a.option_strings or a.dest for a in command._actions if not a.help]
        assert helpless == [], f"nishard {name}: {helpless}"
        assert "--quiet" in command._option_string_actions, name


def test_a_refused_value_names_the_closest_choice(capsys):
    with pytest.raises(SystemExit):
        main(["build", "spec.yaml", "--executor", "slurmarray"])
    assert "(did you mean 'slurm-array'?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["biuld"])
    assert "(did you mean 'build'?)" in capsys.readouterr().err


def _build(spec, *options, every="0"):
    env = {**os.environ, "NISHARD_PROGRESS_EVERY": every}
    env.pop("NISHARD_QUIET", None)
    return subprocess.run([sys.executable, "-m", "nishard", "build", str(spec), *options],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_progress_in_a_log_is_plain_lines_and_quiet_is_silent(tiny, tmp_path):
    spec = write_spec(tmp_path, tiny)
    done = _build(spec, "--restart")  # stderr is a pipe here, as a log file is
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = done.stderr.splitlines()
    progress = [line for line in lines if line.startswith("build: ") and "records (" in line]
    assert len(progress) >= 12, done.stderr  # a line a record (every 0 s), not one frame
    assert progress[-1].startswith("build: 12/12 records (100 %)")
    assert max(len(line) for line in lines) < 300
    quiet = _build(spec, "--restart", "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert quiet.stdout.startswith("wrote 12 samples")  # the result, on stdout


@pytest.mark.slow
def test_fail_on_quarantine_is_a_documented_exit_status(tiny_copy, tmp_path):
    broken = bold_files(tiny_copy)[1]
    broken.write_bytes(broken.read_bytes()[:1000])
    spec = write_spec(tmp_path, tiny_copy)
    assert _build(spec, "-q").returncode == 0  # quarantine alone is not a failure
    done = _build(spec, "-q", "--fail-on-quarantine")
    assert done.returncode == QUARANTINED == 3
    assert "1 records quarantined (--fail-on-quarantine)" in done.stderr
    assert (tmp_path / "shards" / "manifest.json").is_file()  # written all the same
    assert f"{QUARANTINED} records quarantined" in parser().format_help()
