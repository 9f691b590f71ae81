#!/usr/bin/env bash
# Stops what scripts/slurm/start.sh started: slurmd, slurmctld, slurmdbd, MariaDB, munged.
# Leaves the packages, configuration and state (a later start is quick).
set -uo pipefail
STATE=${NISHARD_SLURM_STATE:-/var/lib/nishard-slurm}
{ exec 9>"$STATE.lock"; } 2>/dev/null && command -v flock >/dev/null && flock -w 120 9 || true  # not mid-start

stop_pid() {  # pid file, name: SIGTERM, then SIGKILL after 15 s
  local file=$1 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

stop_pid $STATE/run/slurmd.pid
stop_pid $STATE/run/slurmctld.pid
stop_pid $STATE/run/slurmdbd.pid
if command -v mysqladmin >/dev/null && mysqladmin ping >/dev/null 2>&1; then
  mysqladmin shutdown 2>/dev/null
  for _ in $(seq 150); do pgrep -x mariadbd >/dev/null || pgrep -x mysqld_safe >/dev/null || break; sleep 0.1; done
fi
stop_pid /run/munge/munged.pid
