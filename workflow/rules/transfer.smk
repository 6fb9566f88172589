rule transfer:
    """Fine-tune the retrained network on a second task."""
    input:
        best=rules.search.output.best,
        weights=rules.retrain.output.model,
        data=prepared(transfer_datasets()[0]),
    output:
        metrics=report(f"{RUN}/transfer/metrics.json", caption="../report/transfer_metrics.rst", category="Transfer"),
        log_csv=report(f"{RUN}/transfer/log.csv", caption="../report/transfer_log.rst", category="Transfer"),
    params:
        recipe=config["transfer"]["recipe"],
        input_size=config["transfer"].get("input_size"),
        baseline=config["transfer"].get("baseline_from_scratch", False),
        seed=config["seed"],
        device=CFG.device,
        progress=CFG.progress,
    log:
        f"{LOGS}/transfer.log",
    threads: rule_threads("transfer")
    resources:
        **rule_resources("transfer"),
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
    params:
        recipe=config["transfer"]["recipe"],
        input_size=config["transfer"].get("input_size"),
        baseline=config["transfer"].get("baseline_from_scratch", False),
        seed=config["seed"],
        device=CFG.device,
        progress=CFG.progress,
    log:
        f"{LOGS}/transfer-{{tdataset}}.log",
    threads: rule_threads("transfer")
    resources:
        **rule_resources("transfer"),
    script:
        "../scripts/transfer.py"
