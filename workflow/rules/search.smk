rule search:
    """Search the space with the configured strategy and evaluator; resumable from the journal."""
    input:
        unpack(search_inputs),
    output:
        best=report(f"{RUN}/search/best.json", caption="../report/search_best.rst", category="Search"),
        journal=f"{RUN}/search/journal.parquet",
        curve=report(f"{RUN}/search/curve.png", caption="../report/search_curve.rst", category="Search"),
        headline=headline("search"),
        # The settings the search ran with (lmnas.search.request writes it each run): an out, so DVC and
        # Snakemake remove it with the others and no rerun finds a stray file left in the folder.
        config=f"{RUN}/search/config.json",
        # Wall-clock figures (evaluation costs, wall time, resume point): no later stage reads them,
        # so a search rerun to the same result leaves best.json and journal.parquet byte-identical.
        timings=f"{RUN}/search/timings.json",
    params:
        search=config["search"],
        seed=config["seed"],
        device=config["device"],
        benchmarks_dir=str(CFG.benchmarks_dir),
        progress=config["progress"],
        code=code("search"),
        # The write-ahead journal (and an LLM strategy's transcript) let a killed search resume,
        # so Snakemake must not delete them before a rerun; DVC versions them for replay.
        # fingerprint.json/status.json: what the journal was made with, and whether it finished.
        replay=[f"{RUN}/search/{name}" for name in ("journal.jsonl", "fingerprint.json", "status.json")]
        + ([f"{RUN}/search/transcript.jsonl"] if writes_transcript() else []),
    log:
        f"{LOGS}/search.log",
    threads: rule_threads("search")
    resources:
        **rule_resources("search"),
    conda:
        "../envs/lmnas.yaml"
    script:
        "../scripts/search.py"
