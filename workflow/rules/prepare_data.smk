rule prepare_data:
    """A dataset → Parquet shards with fixed train/val/test splits and a manifest."""
    output:
        directory(f"{PREPARED}/{{dataset}}"),
    params:
        spec=lambda wc: config["datasets"][wc.dataset],
        root=str(ROOT),
        seed=config["seed"],
    log:
        f"{LOGS}/prepare_data-{{dataset}}.log",
    threads: rule_threads("prepare_data")
    resources:
        **rule_resources("prepare_data"),
    script:
        "../scripts/prepare_data.py"
