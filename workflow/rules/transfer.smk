rule transfer:
    """Fine-tune the retrained network on a second task."""
    input:
        best=rules.search.output.best,
        weights=rules.retrain.output.model,
        data=prepared(transfer_datasets()[0]),
    output:
        metrics=report(f"{RUN}/transfer/metrics.json", caption="../report/transfer_metrics.rst", category="Transfer"),
        log_csv=report(f"{RUN}/transfer/log.csv", caption="../report/transfer_log.rst", category="Transfer"),
        headline=headline("transfer"),
        timings=f"{RUN}/transfer/timings.json",  # seconds, images/s: read by no later stage
    params:
        transfer=config["transfer"],
        seed=config["seed"],
        device=config["device"],
        progress=config["progress"],
        code=code("transfer"),
        # Checkpoints (and the from-scratch baseline's folder) for resuming a killed run; a DVC
        # run removes them first, so it always trains afresh.
        resume_state=[f"{RUN}/transfer/checkpoints"]
        + ([f"{RUN}/transfer/scratch"] if config["transfer"]["baseline_from_scratch"] else []),
    log:
        f"{LOGS}/transfer.log",
    threads: rule_threads("transfer")
    resources:
        **rule_resources("transfer"),
    conda:
        "../envs/lmnas.yaml"
    script:
        "../scripts/transfer.py"


rule transfer_more:
    """The same fine-tuning on each further dataset of transfer.dataset (a list)."""
    wildcard_constraints:
        tdataset=r"[A-Za-z0-9_-]+",
    input:
        best=rules.search.output.best,
        weights=rules.retrain.output.model,
        data=lambda wildcards: prepared(wildcards.tdataset),
    output:
        metrics=f"{RUN}/transfer/{{tdataset}}/metrics.json",
        log_csv=f"{RUN}/transfer/{{tdataset}}/log.csv",
        timings=f"{RUN}/transfer/{{tdataset}}/timings.json",
    params:
        transfer=config["transfer"],
        seed=config["seed"],
        device=config["device"],
        progress=config["progress"],
        code=code("transfer"),
        resume_state=lambda wc: [f"{RUN}/transfer/{wc.tdataset}/checkpoints"],
    log:
        f"{LOGS}/transfer-{{tdataset}}.log",
    threads: rule_threads("transfer")
    resources:
        **rule_resources("transfer"),
    conda:
        "../envs/lmnas.yaml"
    script:
        "../scripts/transfer.py"
