#!/usr/bin/env bash
# A one-node SLURM on this machine, for the tests marked `slurm` (Debian 12, as root, no
# systemd): munge, MariaDB (mysqld_safe), slurmdbd (accounting, which Pydra's slurm worker
# polls with sacct), slurmctld and slurmd, all as plain background daemons.
#
#   scripts/slurm/start.sh      install what is missing, configure, start, wait until a
#                               job runs to COMPLETED in sacct; a no-op when SLURM is up
#   scripts/slurm/stop.sh       stop every daemon this script started
#
# Exit status: 0 when SLURM is up; 2 when it cannot be started here (not root, no apt-get):
# the reason is the last line of stderr; 1 on any other failure (logs in $STATE/log).
set -euo pipefail

CLUSTER=nishard
ETC=/etc/slurm
PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)

STATE=${NISHARD_SLURM_STATE:-/var/lib/nishard-slurm}
# One start at a time (two test sessions at once): the second waits, then finds it up.
# The daemons must not inherit the lock's descriptor (each is started with 9>&-).
{ exec 9>"$STATE.lock"; } 2>/dev/null && command -v flock >/dev/null && flock -w 900 9 || true

say() { echo "slurm: $*" >&2; }
cannot() { say "cannot start SLURM here: $*"; exit 2; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
up() {  # the controller answers and the node takes jobs (sinfo retries ~10 s when no
        # controller runs: ask it only when ours does)
  alive $STATE/run/slurmctld.pid && command -v sinfo >/dev/null &&
    timeout 10 sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'
}

if up && timeout 10 sacct -n -X -o JobID >/dev/null 2>&1; then
  say "already running"
  exit 0
fi

[ "$(id -u)" = 0 ] || cannot "not root (it installs packages and runs daemons as root)"
command -v apt-get >/dev/null || cannot "no apt-get (it installs Debian's slurm-wlm packages)"

# ---------------------------------------------------------------- install what is missing
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt-get (another service's set-up) rather than fail on its lock.
  apt=(apt-get -qq -o DPkg::Lock::Timeout=600)
  "${apt[@]}" update >/dev/null
  "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$STATE"/{log,run,ctld,slurmd,mysql} $ETC
LOG=$STATE/log

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n >/dev/null 2>&1 </dev/null; then
  runuser -u munge -- /usr/sbin/munged --force 9>&-
  for _ in $(seq 50); do munge -n >/dev/null 2>&1 </dev/null && break; sleep 0.1; done
  munge -n >/dev/null 2>&1 </dev/null || { say "munged did not start"; exit 1; }
fi

# ---------------------------------------------------------------- MariaDB for slurmdbd
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if ! mysqladmin ping >/dev/null 2>&1; then
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >"$LOG/mariadb-install.log" 2>&1
  nohup mysqld_safe --user=mysql --skip-networking=0 --bind-address=127.0.0.1 \
    >"$LOG/mysqld_safe.log" 2>&1 9>&- &
  for _ in $(seq 300); do mysqladmin ping >/dev/null 2>&1 && break; sleep 0.1; done
  mysqladmin ping >/dev/null 2>&1 || { say "MariaDB did not start (see $LOG)"; exit 1; }
fi
mysql -u root <<'SQL'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# ---------------------------------------------------------------- configuration
HOST=$(hostname -s)
# This host's CPUs and memory as slurmd sees them (a node line: NodeName=... CPUs=...
# Boards=... SocketsPerBoard=... RealMemory=...), less a little memory for the system.
NODE=$(slurmd -C | head -1 | sed -E 's/ UpTime=.*//')
MEM=$(sed -nE 's/.*RealMemory=([0-9]+).*/\1/p' <<<"$NODE")
NODE=$(sed -E "s/RealMemory=[0-9]+/RealMemory=$((MEM * 9 / 10))/; s/^NodeName=\S+/NodeName=$HOST/" <<<"$NODE")

cat >$ETC/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
chmod 600 $ETC/slurmdbd.conf

cat >$ETC/slurm.conf <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
$NODE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

# ---------------------------------------------------------------- daemons
wait_for() {  # seconds, description, command...
  local n=$1 what=$2; shift 2
  for _ in $(seq $((n * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  say "$what did not come up in ${n} s (logs in $LOG)"; exit 1
}

alive $STATE/run/slurmdbd.pid || slurmdbd 9>&-
wait_for 30 slurmdbd sacctmgr -n list cluster
sacctmgr -n -P list cluster format=cluster | grep -qx $CLUSTER || sacctmgr -i add cluster $CLUSTER >/dev/null
alive $STATE/run/slurmctld.pid || slurmctld 9>&-
wait_for 30 slurmctld scontrol ping
alive $STATE/run/slurmd.pid || slurmd 9>&-
wait_for 60 "the node (idle in sinfo)" up
# A node left DOWN or DRAIN by an earlier run: back to service.
scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true

# ---------------------------------------------------------------- a job, end to end
JOB=$(sbatch --parsable --output=/dev/null --wrap true)
job_done() { sacct -n -X -P -j "$JOB" -o State | grep -qx COMPLETED; }
wait_for 60 "job $JOB (COMPLETED in sacct)" job_done
say "up: $(sinfo -h -N -o '%N %T %c CPUs %m MB')"
