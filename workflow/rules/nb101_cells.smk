NB101_CELLS = "data/nb101/cells.parquet"


rule nb101_cells:
    """The whole NAS-Bench-101 space (423,624 cells: hash, matrix, ops, vertex orders), enumerated once.
    Not in the default chain: a target of its own, or an input of searches over the joined table."""
    output:
        cells=NB101_CELLS,
        summary="data/nb101/cells-summary.json",
    params:
        code=code("nb101_cells"),
    log:
        "data/nb101/logs/nb101_cells.log",
    threads: rule_threads("nb101_cells")
    resources:
        **rule_resources("nb101_cells"),
    conda:
        "../envs/lmnas.yaml"
    script:
        "../scripts/nb101_cells.py"
