#!/usr/bin/env bash
# A single-node Slurm on this machine, for tests/test_cluster_slurm.py and
# benchmarks/bench_cluster.py: Debian's slurm-wlm (22.05) with munge, one slurm.conf naming this
# host as controller and compute node, state and spool under /tmp. Idempotent: a second call
# finds the daemons answering and returns at once. Needs root (apt-get, the daemons).
#
#   .ci/slurm-up.sh          install if needed, start, wait until a job can run
#   .ci/slurm-up.sh --check  exit 0 if Slurm answers, 1 if not (starts nothing)
set -euo pipefail

STATE=/tmp/cnnbench-slurm
CONF=/etc/slurm/slurm.conf

answers() { command -v sinfo >/dev/null 2>&1 && timeout 5 sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }

if [ "${1:-}" = "--check" ]; then
  answers
  exit $?
fi
if answers; then
  echo "slurm-up: Slurm answers already ($(sinfo -h -o '%N %t %c CPUs'))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "slurm-up: needs root (apt-get and the daemons)" >&2
  exit 1
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q slurm-wlm munge
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
mkdir -p "$STATE"/{ctld,d,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge
chown -R slurm:slurm "$STATE" 2>/dev/null || true

# munge: one key, its daemon.
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null 2>&1; then mungekey --create --force; else
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none; fi
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  pidfile=/run/munge/munged.pid  # a munged that does not answer: stopped by its pid file
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    sleep 1
  fi
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

cat >"$CONF" <<EOF
# written by cnnbench .ci/slurm-up.sh: a single-node cluster for the tests
ClusterName=cnnbench
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

# A daemon left from an earlier call (or a crashed one) is stopped by its pid file, then started.
for daemon in slurmctld slurmd; do
  pidfile="$STATE/$daemon.pid"
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    sleep 1
  fi
done
/usr/sbin/slurmctld -c -f "$CONF"   # -c: a clean start (no old jobs from an earlier state)
for _ in $(seq 50); do timeout 2 scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
/usr/sbin/slurmd -f "$CONF"
for _ in $(seq 100); do
  if answers; then
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    echo "slurm-up: Slurm is up ($(sinfo -h -o '%N %t %c CPUs'))"
    exit 0
  fi
  sleep 0.2
done
echo "slurm-up: Slurm did not come up; logs in $STATE/log" >&2
tail -5 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
exit 1
