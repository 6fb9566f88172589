rule retrain:
    """Train the best genotype at the full recipe; resumable from per-epoch checkpoints."""
    input:
        best=rules.search.output.best,
        # retrain.dataset: another dataset than the search's (ImageNet: full set vs the search subset)
        data=prepared(config["retrain"].get("dataset", config["search"]["dataset"])),
    output:
        model=f"{RUN}/retrain/model.safetensors",
        metrics=f"{RUN}/retrain/metrics.json",
        log_csv=f"{RUN}/retrain/log.csv",
    params:
        recipe=config["retrain"]["recipe"],
        sync_bn=config["retrain"].get("sync_bn", False),
        seed=config["seed"],
        device=CFG.device,
        progress=CFG.progress,
    log:
        f"{LOGS}/retrain.log",
    threads: rule_threads("retrain")
    resources:
        **rule_resources("retrain"),
    script:
        "../scripts/retrain.py"
