rule transfer:
    """Fine-tune the retrained network on a second task."""
    input:
        best=rules.search.output.best,
        weights=rules.retrain.output.model,
        data=prepared(config["transfer"]["dataset"]),
    output:
        metrics=f"{RUN}/transfer/metrics.json",
        log_csv=f"{RUN}/transfer/log.csv",
        headline=headline("transfer"),
    params:
        transfer=config["transfer"],
        seed=config["seed"],
        device=config["device"],
        progress=config["progress"],
        code=code("transfer"),
        # Checkpoints (and the from-scratch baseline's folder) for resuming a killed run; a DVC
        # run removes them first, so it always trains afresh.
        resume_state=[f"{RUN}/transfer/checkpoints"] + ([f"{RUN}/transfer/scratch"] if config["transfer"]["baseline_from_scratch"] else []),
    log:
        f"{LOGS}/transfer.log",
    threads: rule_threads("transfer")
    resources:
        **rule_resources("transfer"),
    script:
        "../scripts/transfer.py"
