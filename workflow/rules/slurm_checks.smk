# Before the first sbatch (and before --forcerun deletes any output): refuse what the SLURM
# cluster cannot serve. onstart runs after the DAG is built and before any job is prepared.
import sys as _sys


onstart:
    if workflow.executor_plugin is not None and workflow.executor_plugin.name == "slurm":
        from lmnas.errors import LmnasError
        from lmnas.slurm import check_gpu_requests, check_status_command

        settings = workflow.executor_settings
        # rules without GPUs carry no `gpu` resource at all (common.smk: GPU settings on GPU rules only);
        # retrain asks for GPUs per node (gres) on `nodes` nodes
        requests = {
            job.rule.name: (
                (
                    int(job.resources["gpu"])
                    if "gpu" in job.resources.keys()
                    else int(job.resources["gpus_per_node"]) if "gpus_per_node" in job.resources.keys() else 0
                ),
                job.resources.get("slurm_partition") or None,
                int(job.resources["nodes"]) if "nodes" in job.resources.keys() else 1,
            )
            for job in workflow.dag.needrun_jobs()
        }
        try:
            check_gpu_requests(requests)
            check_status_command(settings.status_command, settings.init_seconds_before_status_checks)
        except LmnasError as error:
            _sys.exit(f"lmnas: slurm: {error}")
