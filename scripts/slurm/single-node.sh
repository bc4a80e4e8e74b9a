#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (munged + slurmctld + slurmd on
# localhost), for running `vht trial submit --slurm` without a real cluster:
# CI uses it, and so can anyone trying the Slurm path on a workstation.
#
# Debian/Ubuntu packages, started directly (no systemd: CI containers and
# many VMs have none). Idempotent: running it again when the cluster is up
# does nothing and says so. Needs root.
#
#   scripts/slurm/single-node.sh            # install (if needed), configure, start
#   scripts/slurm/single-node.sh stop       # stop the daemons this script started
#   scripts/slurm/single-node.sh status     # sinfo, or "not running"
#
# Knobs: SLURM_NODE_DIR (state, logs, pid files; default /tmp/vht-slurm),
# SLURM_NODE_CPUS (CPUs the node advertises; default nproc; may exceed it).
#
# Learnt from a tested recipe (Debian 12, slurm-wlm 22.05): the Debian build
# reads /etc/slurm/slurm.conf, so clients need no SLURM_CONF; slurmd 22.05
# initialises its cgroup plugin even with proctrack/linuxproc and refuses to
# start without a cgroup v1 'systemd' hierarchy (or a cgroup.conf for v2);
# package maintainer scripts must not start daemons (policy-rc.d).
set -euo pipefail

DIR=${SLURM_NODE_DIR:-/tmp/vht-slurm}
CONF=/etc/slurm/slurm.conf
MARK='# written by scripts/slurm/single-node.sh'
CPUS=${SLURM_NODE_CPUS:-$(nproc)}
MEM=$(( $(awk '/^MemTotal:/{print int($2/1024)}' /proc/meminfo) - 512 ))
PKGS="munge slurmctld slurmd slurm-client"

log() { printf '[single-node %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { echo "single-node.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
node_idle() { [ "$(sinfo -h -N -o '%T' 2>/dev/null || true)" = idle ]; }

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
     && command -v munged >/dev/null; then
    return 0
  fi
  log "installing $PKGS (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # Keep maintainer scripts from starting daemons before there is a config.
  local own_policy=0 rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1
  fi
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $PKGS >/dev/null; } || rc=$?
  [ $own_policy = 0 ] || rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || die "apt-get install failed (exit $rc)"
  log "installed slurm $(dpkg-query -W -f='${Version}' slurmctld)"
}

config() {
  mkdir -p /etc/slurm "$DIR"/{state,spool,log}
  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    cp -a "$CONF" "$CONF.bak.$(date +%s)"
    log "kept the existing $CONF as $CONF.bak.*"
  fi
  cat > "$CONF" <<CONF
$MARK
ClusterName=vht
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
# Finished jobs leave squeue after a few seconds, so pollers see the end quickly.
MinJobAge=10
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  chmod 644 "$CONF"
}

cgroups() {
  local fstype; fstype=$(stat -fc %T /sys/fs/cgroup 2>/dev/null || echo none)
  if [ "$fstype" = cgroup2fs ]; then
    { echo "$MARK"; echo "CgroupPlugin=cgroup/v2"; echo "IgnoreSystemdOnFailure=yes"
      [ "$(ps -o comm= -p 1)" = systemd ] || echo "IgnoreSystemd=yes"; } > /etc/slurm/cgroup.conf
  elif [ "$(stat -fc %T /sys/fs/cgroup/systemd 2>/dev/null)" != cgroupfs ]; then
    log "mounting a cgroup v1 'systemd' hierarchy (slurmd needs one)"
    { [ "$fstype" != none ] || mount -t tmpfs cgroup_root /sys/fs/cgroup; } &&
      mkdir -p /sys/fs/cgroup/systemd &&
      mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd ||
      log "warning: could not mount it; slurmd may refuse to start"
  fi
}

start() {
  if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" && node_idle; then
    log "already running (state in $DIR)"
    how_to_stop
    return 0
  fi
  install
  stop quiet
  # Fresh controller state: a saved node state would say 'idle' before
  # slurmd has registered.
  rm -rf "$DIR/state"
  config
  if ! munge_ok; then
    [ -s /etc/munge/munge.key ] || mungekey --create --force
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge; chmod 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    cp /run/munge/munged.pid "$DIR/munged.pid"   # recorded only when we started it
    for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
    munge_ok || { tail /var/log/munge/munged.log; die "munged did not come up"; }
  fi
  cgroups
  slurmctld
  slurmd -N localhost
  for _ in $(seq 300); do node_idle && break; sleep 0.2; done
  if ! node_idle; then
    sinfo -N -l || true
    tail -n 30 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" || true
    die "the node did not become idle"
  fi
  log "one-node Slurm cluster up: partition 'debug', $CPUS CPUs, logs in $DIR/log"
  how_to_stop
}

how_to_stop() { log "stop it with: $0 stop"; }

stop_pid() {
  local f=$1 p
  [ -s "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"
    for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p"
    [ "${2:-}" = quiet ] || log "stopped $(basename "$f" .pid) (pid $p)"
  fi
  rm -f "$f"
}

stop() {
  stop_pid "$DIR/slurmd.pid" "${1:-}"
  stop_pid "$DIR/slurmctld.pid" "${1:-}"
  stop_pid "$DIR/munged.pid" "${1:-}"
}

status() {
  if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then sinfo; else echo "not running"; fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "unknown command '$1' (start, stop or status)" ;;
esac
