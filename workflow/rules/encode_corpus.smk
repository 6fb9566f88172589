rule encode_corpus:
    """NAS-Bench-101 cells (filtered) and torchvision families → GPT-NAS layer sequences."""
    output:
        pretrain=f"{RUN}/corpus/pretrain.parquet",
        finetune=f"{RUN}/corpus/finetune.parquet",
        vocab=f"{RUN}/corpus/vocab.json",
        summary=f"{RUN}/corpus/summary.json",
    params:
        records=str(CFG.nasbench101_path()) if CFG.nasbench101_path() else None,
        settings=config["corpus"]["nasbench101"],
        encoding=config["corpus"].get("encoding", "size-free"),
        seed=config["seed"],
    log:
        f"{LOGS}/encode_corpus.log",
    threads: rule_threads("encode_corpus")
    resources:
        **rule_resources("encode_corpus"),
    script:
        "../scripts/encode_corpus.py"
