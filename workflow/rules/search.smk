def search_inputs(wildcards):
    inputs = {"data": prepared(config["search"]["dataset"])} if search_needs_data() else {}
    if uses_archgpt():
        inputs["archgpt"] = rules.train_archgpt.output.finetuned
    inputs["tables"] = benchmark_tables()
    return inputs


rule search:
    """Search the space with the configured strategy and evaluator; resumable from the journal."""
    input:
        unpack(search_inputs),
    output:
        best=f"{RUN}/search/best.json",
        journal=f"{RUN}/search/journal.parquet",
        curve=f"{RUN}/search/curve.png",
        headline=headline("search"),
    params:
        search=config["search"],
        seed=config["seed"],
        device=config["device"],
        benchmarks_dir=str(CFG.benchmarks_dir),
        progress=config["progress"],
        code=code("search"),
        # The write-ahead journal (and an LLM strategy's transcript) let a killed search resume,
        # so Snakemake must not delete them before a rerun; DVC versions them for replay.
        replay=[f"{RUN}/search/journal.jsonl"] + ([f"{RUN}/search/transcript.jsonl"] if writes_transcript() else []),
    log:
        f"{LOGS}/search.log",
    threads: rule_threads("search")
    resources:
        **rule_resources("search"),
    script:
        "../scripts/search.py"
