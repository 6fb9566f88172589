rule retrain:
    """Train the best genotype at the full recipe; resumable from per-epoch checkpoints."""
    input:
        best=rules.search.output.best,
        data=prepared(retrain_dataset()),
    output:
        model=f"{RUN}/retrain/model.safetensors",
        metrics=report(f"{RUN}/retrain/metrics.json", caption="../report/retrain_metrics.rst", category="Retrain"),
        log_csv=report(f"{RUN}/retrain/log.csv", caption="../report/retrain_log.rst", category="Retrain"),
        headline=headline("retrain"),
        timings=f"{RUN}/retrain/timings.json",  # seconds, images/s: read by no later stage
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
    conda:
        "../envs/lmnas.yaml"
    script:
        "../scripts/retrain.py"
