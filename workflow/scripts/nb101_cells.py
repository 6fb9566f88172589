import time

from lmnas.io import write_json
from lmnas.nasbench101.enumerate import NUM_CELLS, enumerate_cells, summary, write_cells
from lmnas.stage import run_stage


def main(smk):
    start = time.perf_counter()
    table = enumerate_cells(workers=smk.threads)
    seconds = time.perf_counter() - start
    write_cells(smk.output.cells, table)
    write_json(smk.output.summary, {**summary(table), "expected": NUM_CELLS, "workers": smk.threads,
                                    "seconds": round(seconds, 1)})


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
