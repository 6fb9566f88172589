rule encode_corpus:
    """NAS-Bench-101 cells (filtered) and torchvision families → GPT-NAS layer sequences."""
    input:
        # The records file when it is there; without it the stage generates cells (generate_if_missing).
        records=[str(p) for p in [CFG.nasbench101_path()] if p is not None and p.exists()],
    output:
        pretrain=f"{RUN}/corpus/pretrain.parquet",
        finetune=f"{RUN}/corpus/finetune.parquet",
        vocab=f"{RUN}/corpus/vocab.json",
        summary=report(
            f"{RUN}/corpus/summary.json", caption="../report/corpus_summary.rst", category="Architecture corpus"
        ),
        headline=headline("encode_corpus"),
        timings=f"{RUN}/corpus/timings.json",  # how long it took: read by no later stage
    params:
        corpus=config["corpus"],
        seed=config["seed"],
        # The setting as written (a rerun trigger and DVC param); the file itself is the input.
        benchmarks_dir=config["benchmarks_dir"],
        code=code("encode_corpus"),
    log:
        f"{LOGS}/encode_corpus.log",
    threads: rule_threads("encode_corpus")
    resources:
        **rule_resources("encode_corpus"),
    conda:
        "../envs/lmnas.yaml"
    script:
        "../scripts/encode_corpus.py"
