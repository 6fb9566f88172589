def report_inputs(wildcards):
    inputs = {
        "data_search": prepared(config["search"]["dataset"]),
        "corpus": rules.encode_corpus.output.summary,
        "search_best": rules.search.output.best,
        "search_journal": rules.search.output.journal,
        "search_curve": rules.search.output.curve,
        "retrain": rules.retrain.output.metrics,
        "retrain_log": rules.retrain.output.log_csv,
        "data_transfer": prepared(config["transfer"]["dataset"]),
        "transfer": rules.transfer.output.metrics,
    }
    if config["search"]["strategy"]["name"] == "ga-gpt":
        inputs["archgpt"] = rules.train_archgpt.output.metrics
        inputs["archgpt_curves"] = rules.train_archgpt.output.curves
    return inputs


rule report:
    """The run's tables and plots in one Markdown report."""
    input:
        unpack(report_inputs),
    output:
        report=f"{RUN}/report/report.md",
        retrain_plot=f"{RUN}/report/retrain.png",
    params:
        run_name=CFG.run_name,
        config=config,
    log:
        f"{LOGS}/report.log",
    threads: rule_threads("report")
    resources:
        **rule_resources("report"),
    script:
        "../scripts/report.py"
