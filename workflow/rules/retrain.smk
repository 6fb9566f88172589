rule retrain:
    """Train the best genotype at the full recipe; resumable from per-epoch checkpoints."""
    input:
        best=rules.search.output.best,
        data=prepared(config["search"]["dataset"]),
    output:
        model=f"{RUN}/retrain/model.safetensors",
        metrics=f"{RUN}/retrain/metrics.json",
        log_csv=f"{RUN}/retrain/log.csv",
        headline=headline("retrain"),
    params:
        retrain=config["retrain"],
        seed=config["seed"],
        device=config["device"],
        progress=config["progress"],
        code=code("retrain"),
        # Per-epoch checkpoints for resuming a killed run; a DVC run removes them first (fresh).
        resume_state=[f"{RUN}/retrain/checkpoints"],
    log:
        f"{LOGS}/retrain.log",
    threads: rule_threads("retrain")
    resources:
        **rule_resources("retrain"),
    script:
        "../scripts/retrain.py"
