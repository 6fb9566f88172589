"""Candidates as SLURM jobs, through submitit: one job per candidate (or per chunk of them).

The runner's guarantees hold as with the local executor:
- journaled as each finishes: a job's results are yielded as soon as its result file appears;
- resumable after a kill -9 of the search: each submission (job id -> candidate keys, seed) is
  appended to <run>/slurm/jobs.jsonl (fsync'ed) before any waiting; a rerun re-attaches to those
  jobs, running or finished, instead of submitting them again: nothing lost, nothing paid twice.
  Jobs submitted in the instant before the kill, not yet logged, are found by their submitit
  folders (<run>/slurm/jobs/<job id>/) and re-attached too;
- preemption or the time limit: the job function is submitit-Checkpointable, so submitit requeues
  it (same job id) keeping the candidates of its chunk already done; a job that still ends without
  a result (cancelled, node failure, out of memory) is resubmitted up to `max_retries` times, then
  recorded as `failed` with its reason, and the search stops with that reason once the rest of
  the batch is journaled (a rerun submits the failed candidates afresh);
- identical results: jobs run parallel.evaluate_one, the local executor's code, with torch's
  thread count fixed to the run's threads_per_evaluation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import DelayedSubmission, FailedJobError, UncompletedJobError
from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

from lmnas import slurm
from lmnas.errors import LmnasError
from lmnas.fields import from_mapping
from lmnas.evaluation.base import EvalResult, Evaluator
from lmnas.jsonl import append_jsonl, read_jsonl
from lmnas.search.parallel import evaluate_one
from lmnas.spaces.base import SearchSpace

JOB_NAME = "lmnas-candidate"
STATE_CHECK_S = 60  # at most this long between two sacct/squeue calls (result files are checked every poll)


@dataclass(frozen=True)
class SlurmSettings:
    """`--executor-settings` / search.executor_settings. Times in minutes, memory in MB."""

    partition: str | None = None          # None: the cluster's default partition
    account: str | None = None
    gpus_per_candidate: int = 0
    gpu_model: str | None = None          # e.g. a100: --gres=gpu:a100:N
    cpus_per_candidate: int = 1           # CPUs allocated per job
    mem_mb: int = 4000
    timeout_min: int = 60                 # time limit of one job (all candidates of its chunk)
    candidates_per_job: int = 1           # >1 amortises start-up (imports, data loading) over a chunk
    max_retries: int = 2                  # resubmissions of a job that ended without a result
    max_parallel: int = 256               # array tasks running at once
    status: str = "sacct"                 # job states from sacct (accounting) or squeue (none)
    poll_s: float = 5.0                   # how often result files are looked for
    cluster: str = "slurm"                # slurm | local (submitit's local processes: tests, laptops)
    setup: list[str] = field(default_factory=list)       # shell lines before the job's python
    sbatch: dict[str, Any] = field(default_factory=dict)  # further sbatch options: {"qos": "high"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlurmSettings:
        settings = from_mapping(cls, data, "executor slurm", noun="settings")
        for name, least in (("cpus_per_candidate", 1), ("mem_mb", 100), ("timeout_min", 1), ("candidates_per_job", 1),
                            ("max_parallel", 1)):  # the schema's bounds (tests/test_schema_bounds.py)
            if not isinstance(getattr(settings, name), int) or getattr(settings, name) < least:
                raise LmnasError(f"executor slurm: {name} must be an integer >= {least}, got {getattr(settings, name)!r}")
        for name in ("gpus_per_candidate", "max_retries"):
            if not isinstance(getattr(settings, name), int) or getattr(settings, name) < 0:
                raise LmnasError(f"executor slurm: {name} must be an integer >= 0, got {getattr(settings, name)!r}")
        if not isinstance(settings.poll_s, (int, float)) or not settings.poll_s > 0:
            raise LmnasError(f"executor slurm: poll_s must be seconds > 0, got {settings.poll_s!r}")
        if settings.status not in ("sacct", "squeue"):
            raise LmnasError(f"executor slurm: status must be 'sacct' or 'squeue', got {settings.status!r}")
        if settings.cluster not in ("slurm", "local"):
            raise LmnasError(f"executor slurm: cluster must be 'slurm' or 'local', got {settings.cluster!r}")
        return settings


class CandidateJob(submitit.helpers.Checkpointable):
    """What one SLURM job runs: evaluate its chunk of candidates, skipping those done before a requeue.

    On preemption/timeout submitit pickles this object (with `done`) and requeues it.
    """

    def __init__(self, space_settings: dict[str, Any], evaluator_settings: dict[str, Any], threads: int) -> None:
        self.space_settings = space_settings
        self.evaluator_settings = evaluator_settings
        self.threads = threads
        self.done: dict[str, EvalResult] = {}

    def __call__(self, items: list[tuple[str, dict[str, Any] | None]], seed: int) -> dict[str, EvalResult]:
        import torch

        from lmnas.evaluation import EVALUATORS
        from lmnas.spaces import SPACES

        torch.set_num_threads(self.threads)
        space_settings, evaluator_settings = dict(self.space_settings), dict(self.evaluator_settings)
        space = SPACES.create(space_settings.pop("name"), **space_settings)
        evaluator = EVALUATORS.create(evaluator_settings.pop("name"), **evaluator_settings)
        for key, lineage in items:
            if key not in self.done:
                self.done[key] = evaluate_one(space, evaluator, key, seed, lineage, self.threads)
        return dict(self.done)


class _VanishingAware(SlurmInfoWatcher):
    """A registered job that the status query no longer lists at all has ended.

    submitit would call it UNKNOWN, i.e. still running, forever: an array task cancelled while
    pending leaves no record in sacct or squeue, and squeue forgets every job after MinJobAge.
    A grace period covers a fresh submission not yet visible (slurmdbd lag). Its result file then
    tells success from failure.
    """

    GRACE_S = 30.0
    query = "the status query"

    def __init__(self, delay_s: int) -> None:
        super().__init__(delay_s)
        self._since: dict[str, float] = {}  # job id -> when this process began watching it

    def register_job(self, job_id: str) -> None:
        super().register_job(job_id)
        self._since.setdefault(job_id, time.time())

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        info = super().read_info(string)
        for job_id in self._registered - self._finished:
            if job_id not in info and time.time() - self._since.get(job_id, 0.0) > self.GRACE_S:
                info[job_id] = {"JobID": job_id, "State": f"ENDED (no longer listed by {self.query})"}
        return info


class _SacctWatcher(_VanishingAware):
    query = "sacct"


class _SqueueWatcher(_VanishingAware):
    """Job states from squeue, for clusters without accounting (submitit itself asks sacct)."""

    query = "squeue"

    def _make_command(self) -> list[str] | None:
        if not self._registered - self._finished:
            return None
        return ["squeue", "--me", "--states=all", "--noheader", "--format=%i|%T"]

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        text = string.decode() if isinstance(string, bytes) else string
        return super().read_info("JobID|State\n" + text)


class _SacctJob(SlurmJob):
    watcher = _SacctWatcher(delay_s=STATE_CHECK_S)


class _SqueueJob(SlurmJob):
    watcher = _SqueueWatcher(delay_s=STATE_CHECK_S)


def job_evaluator_settings(settings: dict[str, Any], gpus: int) -> dict[str, Any]:
    """The device is the job's, not the search process's (which may run on a node without GPUs)."""
    settings = dict(settings)
    if "device" in settings:
        settings["device"] = "cuda" if gpus > 0 else "cpu"
    return settings


# job id -> (the job, its "submitted" log record) for the jobs being waited on
Running = dict[str, tuple[submitit.Job, dict[str, Any]]]


class SlurmExecutor:
    def __init__(self, space: SearchSpace, evaluator: Evaluator, out_dir: Path, settings: SlurmSettings,
                 threads: int = 1) -> None:
        self.settings = settings
        self.folder = out_dir / "slurm"
        self.jobs_folder = self.folder / "jobs"
        self.log_path = self.folder / "jobs.jsonl"
        if settings.cluster == "slurm":
            self._check_cluster()
        # torch threads = the run's threads_per_evaluation (not the allocation's CPUs): same numbers as local
        self.function = CandidateJob(space.settings(), job_evaluator_settings(evaluator.settings(), settings.gpus_per_candidate),
                                     threads)
        self.executor = submitit.AutoExecutor(folder=self.jobs_folder / "%j", cluster=settings.cluster)
        self.executor.update_parameters(**self._parameters())
        self.live: dict[str, dict[str, Any]] = {}  # key -> record of the job that holds (or will hold) its result
        self._read_log()

    # ---- set-up ----------------------------------------------------------------------------------
    def _check_cluster(self) -> None:
        s = self.settings
        if not slurm.available():
            raise LmnasError("executor slurm: no SLURM controller answers here (sinfo failed); "
                             "use --executor local, or run where sbatch works")
        if s.status == "sacct" and (error := slurm.accounting_error()) is not None:
            raise LmnasError(f"executor slurm: no job accounting here (sacct: {error}); "
                             "set \"status\": \"squeue\" in the executor settings")
        slurm.check_gpu_requests({"executor slurm": (s.gpus_per_candidate, s.partition)},
                                 setting="executor setting gpus_per_candidate")

    def _parameters(self) -> dict[str, Any]:
        s = self.settings
        params: dict[str, Any] = {"name": JOB_NAME, "timeout_min": s.timeout_min, "cpus_per_task": s.cpus_per_candidate}
        if s.cluster == "local":
            return {**params, **({"gpus_per_node": s.gpus_per_candidate} if s.gpus_per_candidate else {})}
        params.update(slurm_mem=f"{s.mem_mb}M", slurm_array_parallelism=s.max_parallel)
        if s.gpus_per_candidate and s.gpu_model:
            params["slurm_gres"] = f"gpu:{s.gpu_model}:{s.gpus_per_candidate}"
        elif s.gpus_per_candidate:
            params["gpus_per_node"] = s.gpus_per_candidate
        optional = {"slurm_partition": s.partition, "slurm_account": s.account, "slurm_setup": s.setup or None,
                    "slurm_additional_parameters": s.sbatch or None}
        params.update({k: v for k, v in optional.items() if v is not None})
        return params

    def _read_log(self) -> None:
        """Rebuild key -> live job from the log, plus jobs submitted but not yet logged when killed."""
        records = read_jsonl(self.log_path, "SLURM job log")
        logged = set()
        for record in records:
            logged.add(record["job_id"])
            if record["event"] == "submitted":
                for key in record["keys"]:
                    self.live[key] = record
            else:  # retried / failed: that job will not give a result
                for key in record["keys"]:
                    if self.live.get(key, {}).get("job_id") == record["job_id"]:
                        del self.live[key]
        if not self.jobs_folder.is_dir():
            return
        for folder in sorted(self.jobs_folder.iterdir()):
            pickle = folder / f"{folder.name}_submitted.pkl"
            if folder.name in logged or not pickle.exists():
                continue
            items, seed = DelayedSubmission.load(pickle).args
            self._log("submitted", folder.name, [key for key, _ in items], seed=seed, attempt=1, recovered=True)

    def _log(self, event: str, job_id: str, keys: list[str], **extra: Any) -> None:
        record = {"event": event, "job_id": job_id, "keys": keys, "time": time.time(), **extra}
        append_jsonl(self.log_path, record)
        if event == "submitted":
            for key in keys:
                self.live[key] = record
        else:
            for key in keys:
                if self.live.get(key, {}).get("job_id") == job_id:
                    del self.live[key]

    # ---- jobs --------------------------------------------------------------------------------------
    def _attach(self, job_id: str) -> submitit.Job:
        if self.settings.cluster == "local":
            return submitit.LocalJob(self.jobs_folder / "%j", job_id)
        job_class = _SqueueJob if self.settings.status == "squeue" else _SacctJob
        return job_class(self.jobs_folder / "%j", job_id)

    def _submit(self, keys: list[str], seed: int, lineages: dict[str, dict[str, Any]], attempt: int) -> Running:
        n = self.settings.candidates_per_job
        chunks = [keys[i:i + n] for i in range(0, len(keys), n)]
        if not chunks:
            return {}
        with self.executor.batch():  # one sbatch: a job array
            submitted = [self.executor.submit(self.function, [(k, lineages.get(k)) for k in chunk], seed)
                         for chunk in chunks]
        out = {}
        for chunk, job in zip(chunks, submitted):
            self._log("submitted", job.job_id, chunk, seed=seed, attempt=attempt)
            # local jobs keep their process handle; SLURM jobs are watched by our own state poller
            out[job.job_id] = (job if self.settings.cluster == "local" else self._attach(job.job_id), self.live[chunk[0]])
        return out

    def evaluate(self, keys: list[str], seed: int,
                 lineages: dict[str, dict[str, Any]] | None = None) -> Iterator[tuple[str, EvalResult]]:
        """Results as their jobs finish: jobs a killed run had submitted for these keys are re-attached,
        the other keys submitted; failed jobs are raised together once every job is done."""
        lineages = lineages or {}
        running = self._reattach(keys, seed)
        attached = {k for _, record in running.values() for k in record["keys"]}
        running.update(self._submit([k for k in keys if k not in attached], seed, lineages, attempt=1))
        failures: list[str] = []
        yield from self._collect(running, set(keys), seed, lineages, failures)
        if failures:
            raise LmnasError(f"{len(failures)} candidate job(s) failed (recorded in {self.log_path}): "
                             + "; ".join(failures))

    def _reattach(self, keys: list[str], seed: int) -> Running:
        """The logged live jobs (same seed) that hold some of `keys`: submitted by a killed run."""
        running: Running = {}
        for key in keys:
            record = self.live.get(key)
            if record is not None and record["seed"] == seed and record["job_id"] not in running:
                running[record["job_id"]] = (self._attach(record["job_id"]), record)
        return running

    def _collect(self, running: Running, wanted: set[str], seed: int, lineages: dict[str, dict[str, Any]],
                 failures: list[str]) -> Iterator[tuple[str, EvalResult]]:
        """Poll until no job runs, yielding each wanted key's result once; `running` takes the resubmissions."""
        yielded: set[str] = set()
        while running:
            finished = [job_id for job_id, (job, _) in running.items() if job.done()]
            if not finished:
                time.sleep(self.settings.poll_s)
                continue
            for job_id in finished:
                job, record = running.pop(job_id)
                todo = [k for k in record["keys"] if k in wanted and k not in yielded]
                results = self._results(job_id, job, record, todo, seed, lineages, running, failures)
                for key in todo:
                    if key in results:
                        yielded.add(key)
                        yield key, results[key]

    def _results(self, job_id: str, job: submitit.Job, record: dict[str, Any], todo: list[str], seed: int,
                 lineages: dict[str, dict[str, Any]], running: Running, failures: list[str]) -> dict[str, EvalResult]:
        """A finished job's results; none when it failed (noted in `failures`) or ended without a result
        (resubmitted into `running` while retries are left, else noted)."""
        try:
            return job.result()
        except FailedJobError as error:  # the evaluation raised: retrying would raise again
            reason = _last_line(str(error))
            self._log("failed", job_id, record["keys"], reason=reason, log=str(job.paths.stderr))
            failures.append(f"{', '.join(todo)}: job {job_id} failed: {reason} (log: {job.paths.stderr})")
        except UncompletedJobError:
            reason = f"ended without a result (SLURM state {job.state})"
            if record["attempt"] <= self.settings.max_retries:
                self._log("retried", job_id, record["keys"], reason=reason)
                running.update(self._submit(todo, seed, lineages, attempt=record["attempt"] + 1))
            else:
                self._log("failed", job_id, record["keys"], reason=reason, log=str(job.paths.stdout))
                failures.append(f"{', '.join(todo)}: job {job_id} {reason} after {record['attempt']} "
                                f"attempts (log: {job.paths.stdout})")
        return {}

    def close(self) -> None:
        """Jobs still running are left running: a rerun of the search re-attaches to them."""


def _last_line(trace: str) -> str:
    """The exception line of a job's traceback (submitit wraps it in dashes and log hints)."""
    lines = [line.strip() for line in trace.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("---", "You can check", "or at paths", "- "))]
    return lines[-1] if lines else "unknown error"
