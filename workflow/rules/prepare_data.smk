rule prepare_data:
    """A dataset → Parquet shards with fixed train/val/test splits and a manifest."""
    output:
        directory(f"{PREPARED}/{{dataset}}"),
    params:
        datasets=lambda wc: config["datasets"][wc.dataset],
        seed=config["seed"],
        root=str(ROOT),
        code=code("prepare_data"),
    log:
        f"{LOGS}/prepare_data-{{dataset}}.log",
    threads: rule_threads("prepare_data")
    resources:
        **rule_resources("prepare_data"),
    conda:
        "../envs/lmnas.yaml"
    script:
        "../scripts/prepare_data.py"
