rule trials:
    """N seeds of the method and of random search / regularized evolution at the search budget."""
    input:
        unpack(search_inputs),
        search_best=rules.search.output.best,  # the method's trial at `seed` is the search stage's run
    output:
        summary=f"{RUN}/trials/trials.json",
    params:
        search=config["search"],
        trials=config["trials"],
        seed=config["seed"],
        device=config["device"],
        benchmarks_dir=str(CFG.benchmarks_dir),
        progress=config["progress"],
        code=code("trials"),
    log:
        f"{LOGS}/trials.log",
    threads: rule_threads("search")
    resources:
        **rule_resources("search"),
    conda:
        "../envs/lmnas.yaml"
    script:
        "../scripts/trials.py"
