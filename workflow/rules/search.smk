def search_inputs(wildcards):
    inputs = {"data": prepared(config["search"]["dataset"])} if search_needs_data() else {}
    if uses_archgpt():
        inputs["archgpt"] = rules.train_archgpt.output.finetuned
    return inputs


rule search:
    """Search the space with the configured strategy and evaluator; resumable from the journal."""
    input:
        unpack(search_inputs),
    output:
        best=report(f"{RUN}/search/best.json", caption="../report/search_best.rst", category="Search"),
        journal=f"{RUN}/search/journal.parquet",
        curve=report(f"{RUN}/search/curve.png", caption="../report/search_curve.rst", category="Search"),
    params:
        search=config["search"],
        seed=config["seed"],
        device=CFG.device,
        progress=CFG.progress,
    log:
        f"{LOGS}/search.log",
    threads: rule_threads("search")
    resources:
        **rule_resources("search"),
    script:
        "../scripts/search.py"
