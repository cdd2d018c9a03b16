#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (munge, slurmctld and slurmd on localhost), for aelab's SLURM tests and for
# trying `hydra/launcher=slurm` on a laptop. Debian/Ubuntu, as root.
#
#   scripts/slurm_cluster.sh install   # apt-get install slurm-wlm munge (once; a no-op when installed)
#   scripts/slurm_cluster.sh start     # install if needed, write /etc/slurm/slurm.conf, start the daemons, wait for the node
#   scripts/slurm_cluster.sh status    # exit 0 and print the node line when the cluster takes jobs
#   scripts/slurm_cluster.sh stop      # stop the daemons this script started (by their pid files)
#
# Every command is idempotent: `start` on a running cluster only checks it; a changed slurm.conf restarts the
# daemons. The node is this machine as `slurmd -C` describes it (CPUs, memory), with at least
# AELAB_SLURM_MIN_CPUS=4 CPUs (config_overrides: on a 2-core machine four one-CPU jobs share the cores rather than
# queue behind each other). `ProctrackType=proctrack/linuxproc` and `TaskPlugin=task/none` need no cgroups
# (containers). No accounting (slurmdbd): aelab's launcher (hydra/launcher=slurm) reads job states from `squeue`;
# submitit's own waiting asks `sacct`, so hydra-submitit-launcher's `submitit_slurm` warns on every poll here and
# never sees a job that died without a result file end.
# KillWait=5: a preempted or requeued job gets SIGTERM and 5 s before SIGKILL (clusters use 30 s or more).
# AuthInfo=cred_expire=10: a requeued job is eligible to start 10 + 1 s after its requeue (SLURM's default: 121 s).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
RUN=/run/aelab-slurm
LOGS=/var/log/aelab-slurm
SPOOL=/var/spool/aelab-slurm
PARTITION=${AELAB_SLURM_PARTITION:-debug}
MIN_CPUS=${AELAB_SLURM_MIN_CPUS:-4}  # the node offers at least this many CPUs (oversubscribing a smaller machine)

need_root() {
  [ "$(id -u)" = 0 ] || { echo "slurm_cluster.sh: needs root (apt-get install, daemons in /run)" >&2; exit 2; }
}

install() {
  need_root
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null; then
    return 0
  fi
  command -v apt-get >/dev/null || { echo "slurm_cluster.sh: no apt-get; install slurm-wlm and munge yourself" >&2; exit 2; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  echo "installed slurm-wlm and munge"
}

write_conf() {
  local node host
  host=$(hostname -s)
  node=$(slurmd -C | head -1)  # NodeName=<host> CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ThreadsPerCore=.. RealMemory=..
  cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node")
  if [ "$cpus" -lt "$MIN_CPUS" ]; then  # a small machine: SLURM may start more 1-CPU jobs than it has cores
    node="NodeName=$host CPUs=$MIN_CPUS RealMemory=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$node")"
  fi
  mkdir -p "$CONF_DIR" "$RUN" "$LOGS" "$SPOOL/ctld" "$SPOOL/d"
  cat >"$CONF.new" <<EOF
# written by aelab's scripts/slurm_cluster.sh: a one-node cluster on $host
ClusterName=aelab
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
SchedulerParameters=sched_interval=2,bf_interval=5
MessageTimeout=20
SlurmdParameters=config_overrides
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  sed -i 's/ UpTime=.*//' "$CONF.new"
  if [ -f "$CONF" ] && cmp -s "$CONF" "$CONF.new"; then rm "$CONF.new"; return 1; fi
  mv "$CONF.new" "$CONF"
  return 0
}

alive() {  # alive <pid file>
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_ready() {
  local state
  state=$(sinfo -h -N -o %T 2>/dev/null | head -1)
  case "$state" in idle|mixed|allocated|completing) return 0 ;; esac
  return 1
}

start() {
  install
  local changed=0
  write_conf && changed=1
  if ! alive "$RUN/munged.pid"; then
    mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
    if [ ! -s /etc/munge/munge.key ]; then
      (command -v mungekey >/dev/null && mungekey --create --force) || create-munge-key -f
      chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    fi
    if pgrep -x munged >/dev/null; then  # a munged this script did not start (e.g. the package's service): use it
      pgrep -x munged | head -1 >"$RUN/munged.pid.foreign"
    else
      runuser -u munge -- munged --pid-file=/run/munge/munged.pid
      sleep 0.5
      cp /run/munge/munged.pid "$RUN/munged.pid"
    fi
  fi
  munge -n | unmunge >/dev/null || { echo "slurm_cluster.sh: munge does not work" >&2; exit 1; }
  if [ "$changed" = 1 ]; then  # a new node or option: the daemons read it at their start
    stop_daemon slurmd
    stop_daemon slurmctld
  fi
  alive "$RUN/slurmctld.pid" || slurmctld
  alive "$RUN/slurmd.pid" || slurmd
  local deadline=$((SECONDS + 60))
  until node_ready; do
    if [ $SECONDS -ge $deadline ]; then
      echo "slurm_cluster.sh: the node did not come up within 60 s; see $LOGS/" >&2
      sinfo -N -l >&2 || true
      tail -20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
      exit 1
    fi
    case "$(sinfo -h -N -o %T 2>/dev/null | head -1)" in
      down*|drain*) scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
  done
  status
}

status() {
  command -v sinfo >/dev/null || { echo "slurm_cluster.sh: SLURM is not installed"; return 1; }
  alive "$RUN/slurmctld.pid" && alive "$RUN/slurmd.pid" && node_ready || { echo "slurm_cluster.sh: not running"; return 1; }
  sinfo -N -o "%N %T %c %m %P"
}

stop_daemon() {  # stop_daemon <name>: the one whose pid this script recorded
  if alive "$RUN/$1.pid"; then
    kill "$(cat "$RUN/$1.pid")"
    for _ in $(seq 100); do alive "$RUN/$1.pid" || break; sleep 0.1; done
  fi
  rm -f "$RUN/$1.pid" "$RUN/$1.pid.foreign"
}

stop() {
  need_root
  local name
  if alive "$RUN/slurmctld.pid"; then
    scancel --quiet --full --state=PENDING,RUNNING --user="$(id -un)" 2>/dev/null || true
  fi
  for name in slurmd slurmctld munged; do
    stop_daemon "$name"
  done
  echo "slurm_cluster.sh: stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  status) status ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|status|stop" >&2; exit 2 ;;
esac
