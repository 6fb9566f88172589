#!/usr/bin/env bash
# CI on a real single-node SLURM, as root (called by .ci/run after the test suite, venv active):
#   1. accounting (slurmdbd): the embedded default through workflow/profiles/slurm-ci, then sacct must
#      show every stage COMPLETED with its rule's CPUs, memory, time limit and GPUs (.ci/slurm_check.py);
#      a GPU request the cluster cannot serve is refused before --forcerun deletes anything;
#      the workflow again with search.executor: slurm (.ci/slurm-executor.yaml: the candidates as SLURM
#      jobs submitted from inside the search stage's own job);
#      the search's candidates as SLURM jobs (tests/test_slurm_cluster.py: identical to local,
#      kill -9 + rerun, cancelled job resubmitted).
#   2. no accounting: the default sacct status query is refused at once (it would hang), the chain's
#      head runs with --slurm-status-command squeue, and the candidate executor with "status": "squeue".
#   3. two nodes: a private 2-slurmd cluster beside it (.ci/slurm-two-nodes.sh), where a --nodes=2 job
#      retrains through srun + torchrun rendezvous as the retrain rule does (tests/test_slurm_multinode.py;
#      its fallback for 1-node clusters, 2 tasks standing for 2 nodes, is not run here: the 2 real nodes
#      check the same torchrun line).
# The cluster comes from ../shared/cluster/slurm-single-node.sh (CI has shared/ beside the clone;
# SLURM_RECIPE overrides): one tested recipe for every project on these machines, not a copy that
# drifts. Its daemons are stopped by PID file at exit, whatever happens.
#   .ci/slurm.sh [all|accounting|no-accounting|two-nodes]      (default all)
set -euo pipefail
PHASE=${1:-all}
cd "$(dirname "$0")/.."
RECIPE=${SLURM_RECIPE:-../shared/cluster/slurm-single-node.sh}
[ -r "$RECIPE" ] || { echo "slurm-ci: no recipe at $RECIPE (set SLURM_RECIPE)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "slurm-ci: must run as root (apt-get, daemons)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/lmnas-slurm-ci.XXXXXX)
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export LMNAS_SLURM_EXPECTED=1      # tests/test_slurm_cluster.py fails (not skips) without a cluster
trap 'bash .ci/slurm-two-nodes.sh stop; bash "$RECIPE" stop' EXIT
T0=$(date +%s)
say() { echo "slurm-ci: +$(( $(date +%s) - T0 ))s $*"; }
# The plugin's own hang cannot outlive CI: TERM, then KILL 30 s later (SIGTERM alone does not stop it).
smk() { timeout -k 30 "$1" python -m snakemake -s Snakefile "${@:2}"; }

up() {  # up WITH_DBD
  local t=$(date +%s)
  WITH_DBD=$1 FAKE_GPUS=1 bash "$RECIPE" > "$WORK/up-$1.log" 2>&1 || { cat "$WORK/up-$1.log"; return 1; }
  say "cluster up (accounting: $([ "$1" = 1 ] && echo slurmdbd || echo none)) in $(( $(date +%s) - t )) s"
}

# ---- 1. with accounting ---------------------------------------------------------------------------
if [ "$PHASE" = all ] || [ "$PHASE" = accounting ]; then
up 1
SINCE=$(date +%FT%T)
t=$(date +%s)
# Every stage as its own job on less work (tests/small_chain.yaml): sacct checks states and resources.
smk 1500 --profile workflow/profiles/slurm-ci --configfile tests/small_chain.yaml .ci/slurm-ci.yaml --directory "$WORK/sacct" \
  > "$WORK/sacct.log" 2>&1 || { tail -50 "$WORK/sacct.log"; exit 1; }
say "embedded default through the slurm profile (sacct status) in $(( $(date +%s) - t )) s"
python .ci/slurm_check.py --since "$SINCE" --configfile .ci/slurm-ci.yaml

# A GPU stage on a cluster with 1 GPU asking for 2: refused before --forcerun deletes its outputs.
echo 'resources: {transfer: {threads: 1, mem_mb: 8000, runtime: 60, gpus: 2}}' > "$WORK/gpus2.yaml"
before=$(stat -c %Y "$WORK/sacct/results/default/transfer/metrics.json")
if smk 300 --profile workflow/profiles/slurm-ci --configfile "$WORK/gpus2.yaml" --directory "$WORK/sacct" \
     --forcerun transfer > "$WORK/gpu.log" 2>&1; then
  echo "slurm-ci: a 2-GPU stage on a 1-GPU cluster was not refused" >&2; exit 1
fi
grep -F "lmnas: slurm: transfer asks for 2 GPU(s) but partition 'debug' has at most 1 per node" "$WORK/gpu.log"
[ "$(stat -c %Y "$WORK/sacct/results/default/transfer/metrics.json")" = "$before" ]
say "GPU request beyond the cluster refused, outputs kept"

# The search's candidates as SLURM jobs submitted from inside the search stage's own SLURM job
# (search.executor: slurm): the search and what follows rerun in the same folder; every candidate
# job must be COMPLETED in sacct and the whole budget journaled.
t=$(date +%s)
smk 900 --profile workflow/profiles/slurm-ci --configfile tests/small_chain.yaml .ci/slurm-ci.yaml .ci/slurm-executor.yaml \
  --directory "$WORK/sacct" --until search > "$WORK/executor.log" 2>&1 || { tail -50 "$WORK/executor.log"; exit 1; }
python - "$WORK/sacct/results/default/search" <<'EOF_PY'
import json, subprocess, sys
from pathlib import Path
search = Path(sys.argv[1])
events = [json.loads(line) for line in (search / "slurm/jobs.jsonl").read_text().splitlines()]
ids = sorted({e["job_id"] for e in events if e["event"] == "submitted"})
out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,JobName,State", *[f"-j{i}" for i in ids]],
                     capture_output=True, text=True, check=True).stdout
states = {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines()}
rows = len((search / "journal.jsonl").read_text().splitlines())
assert ids and all(states.get(i) == ["lmnas-candidate", "COMPLETED"] for i in ids), (ids, states)
assert rows == json.loads((search / "best.json").read_text())["evaluations"] == 8, rows
print(f"slurm-ci: {rows} candidates in {len(ids)} SLURM jobs, all COMPLETED")
EOF_PY
say "workflow with search.executor slurm (candidates as jobs from the search's job) in $(( $(date +%s) - t )) s"

t=$(date +%s)
python -m pytest -q -p no:cacheprovider tests/test_slurm_cluster.py
say "candidate executor on SLURM (sacct) in $(( $(date +%s) - t )) s"
bash "$RECIPE" stop
fi

# ---- 2. without accounting ------------------------------------------------------------------------
if [ "$PHASE" = all ] || [ "$PHASE" = no-accounting ]; then
up 0
t=$(date +%s)
if smk 120 --profile workflow/profiles/slurm-ci --directory "$WORK/squeue" > "$WORK/nodbd.log" 2>&1; then
  echo "slurm-ci: the sacct status query without accounting was not refused" >&2; exit 1
fi
grep -F "lmnas: slurm: SLURM job accounting is not available here" "$WORK/nodbd.log"
say "sacct status without accounting refused in $(( $(date +%s) - t )) s (no hang)"
# The head of the chain polled with squeue: the status mode is what is tested here (the whole chain ran
# above), so three jobs, two of them dependent (prepare_data ∥ encode_corpus → train_archgpt), suffice.
t=$(date +%s)
smk 900 --profile workflow/profiles/slurm-ci --slurm-status-command squeue --directory "$WORK/squeue" \
  --configfile tests/small_chain.yaml --until train_archgpt prepare_data \
  > "$WORK/squeue.log" 2>&1 || { tail -50 "$WORK/squeue.log"; exit 1; }
test -s "$WORK/squeue/results/default/archgpt/metrics.json"
ls "$WORK/squeue/data/prepared/"*/manifest.json > /dev/null
say "chain head through the slurm profile (squeue status) in $(( $(date +%s) - t )) s"
t=$(date +%s)
LMNAS_SLURM_STATUS=squeue python -m pytest -q -p no:cacheprovider tests/test_slurm_cluster.py -k match_the_local
say "candidate executor on SLURM (squeue) in $(( $(date +%s) - t )) s"
fi

# ---- 3. two slurmd nodes on this host -------------------------------------------------------------
if [ "$PHASE" = all ] || [ "$PHASE" = two-nodes ]; then
[ "$PHASE" = two-nodes ] && up 0   # the packages and munged
t=$(date +%s)
bash .ci/slurm-two-nodes.sh > "$WORK/two-nodes.log" 2>&1 || { cat "$WORK/two-nodes.log"; exit 1; }
say "private 2-node cluster up in $(( $(date +%s) - t )) s"
t=$(date +%s)
SLURM_CONF=/tmp/lmnas-slurm-2nodes/slurm.conf LMNAS_SLURM_NODES=2 \
  python -m pytest -q -p no:cacheprovider tests/test_slurm_multinode.py
say "retrain on 2 nodes (srun + torchrun c10d rendezvous) in $(( $(date +%s) - t )) s"
bash .ci/slurm-two-nodes.sh stop
fi
say "done ($PHASE)"
