#!/usr/bin/env bash
# A second, private SLURM cluster of 2 nodes on this one host: its own slurmctld and two slurmd
# daemons (Debian's Slurm is built with multiple-slurmd: `scontrol show config` says
# MULTIPLE_SLURMD = Yes), on their own ports, state and spool folders, no accounting. It leaves the
# cluster of ../shared/cluster/slurm-single-node.sh (whose packages and munged it needs) as it is.
#   bash .ci/slurm-two-nodes.sh          configure + start + wait until both nodes are idle; prints SLURM_CONF=...
#   bash .ci/slurm-two-nodes.sh stop     stop the daemons it started (by their PID files)
# DIR (default /tmp/lmnas-slurm-2nodes), PORT (controller; the nodes take PORT+4, PORT+5; default 7817),
# NODE_NAMES (default "<hostname> <hostname>-2"): the first must resolve to this host, as a real node's
# name does, because torchrun's rendezvous endpoint is the job's first node. Not "localhost": Slurm
# reads a node named localhost as this host's name, which then clashes with the other node.
# Clients reach this cluster with SLURM_CONF=$DIR/slurm.conf (sbatch passes it on to the job).
set -euo pipefail
DIR=${DIR:-/tmp/lmnas-slurm-2nodes}
PORT=${PORT:-7817}
read -r N1 N2 <<< "${NODE_NAMES:-$(hostname -s) $(hostname -s)-2}"
stop() {
  for f in "$DIR"/slurmd-*.pid "$DIR"/slurmctld.pid; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    fi
    rm -f "$f"
  done
}
if [ "${1:-}" = stop ]; then stop; exit 0; fi
getent hosts "$N1" >/dev/null || { echo "slurm-two-nodes: node name $N1 does not resolve (set NODE_NAMES)" >&2; exit 1; }
munge -n | unmunge >/dev/null || { echo "slurm-two-nodes: munged is not running (start the single-node recipe first)" >&2; exit 1; }

mkdir -p "$DIR/state" "$DIR/spool"
MEM=$(( $(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') * 40 / 100 ))   # each node ~40 % of the host
cat > "$DIR/slurm.conf" <<EOF
ClusterName=lmnas2
SlurmctldHost=localhost
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$PORT
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
JobCompType=jobcomp/none
NodeName=$N1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((PORT + 4)) CPUs=$(nproc) RealMemory=$MEM State=UNKNOWN
NodeName=$N2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((PORT + 5)) CPUs=$(nproc) RealMemory=$MEM State=UNKNOWN
PartitionName=two Nodes=$N1,$N2 Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$DIR/slurm.conf
/usr/sbin/slurmctld -f "$SLURM_CONF"
for _ in $(seq 1 30); do scontrol ping >/dev/null 2>&1 && break; sleep 1; done
/usr/sbin/slurmd -f "$SLURM_CONF" -N "$N1"
/usr/sbin/slurmd -f "$SLURM_CONF" -N "$N2"
for _ in $(seq 1 60); do
  [ "$(sinfo -h -p two -t idle -o %D 2>/dev/null)" = 2 ] && break; sleep 1
done
[ "$(sinfo -h -p two -t idle -o %D)" = 2 ] || { sinfo >&2; tail -n 20 "$DIR"/*.log >&2; exit 1; }
timeout 60 srun -N2 -n2 true
sinfo
echo "SLURM_CONF=$SLURM_CONF"
