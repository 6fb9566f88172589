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
    conda:
        "../envs/lmnas.yaml"
    script:
        "../scripts/report.py"
