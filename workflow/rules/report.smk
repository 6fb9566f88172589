def report_inputs(wildcards):
    inputs = {
        "search_best": rules.search.output.best,
        "search_journal": rules.search.output.journal,
        "search_curve": rules.search.output.curve,
    }
    if search_needs_data() or enabled("retrain"):
        inputs["data_search"] = prepared(config["search"]["dataset"])
    if enabled("retrain") and retrain_dataset() != config["search"]["dataset"]:
        inputs["data_retrain"] = prepared(retrain_dataset())
    if enabled("retrain"):
        inputs["retrain"] = rules.retrain.output.metrics
        inputs["retrain_log"] = rules.retrain.output.log_csv
        if enabled("transfer"):
            inputs["data_transfer"] = prepared(transfer_datasets()[0])
            inputs["transfer"] = rules.transfer.output.metrics
            for name in transfer_datasets()[1:]:
                inputs[f"transfer_{name}"] = f"{RUN}/transfer/{name}/metrics.json"
    if config["trials"]["enabled"]:
        inputs["trials"] = rules.trials.output.summary
    if uses_archgpt():
        inputs["corpus"] = rules.encode_corpus.output.summary
        inputs["archgpt"] = rules.train_archgpt.output.metrics
        inputs["archgpt_curves"] = rules.train_archgpt.output.curves
    return inputs


rule report:
    """The run's tables and plots in one Markdown report."""
    input:
        unpack(report_inputs),
    output:
        report=report(f"{RUN}/report/report.md", caption="../report/report_md.rst", category="Report"),
    params:
        run_name=CFG.run_name,
        config=config,
        code=code("report"),
    log:
        f"{LOGS}/report.log",
    threads: rule_threads("report")
    resources:
        **rule_resources("report"),
    script:
        "../scripts/report.py"
