# lmnas: the stage chain. Each stage is one rule file; see README.md and ../shared/DESIGN.md.
from snakemake.utils import min_version

min_version("8.0")  # the --allowed-rules/--force behaviour and script API the DVC stages rely on


# The embedded default, found beside this file whatever the working directory (--directory).
configfile: f"{workflow.basedir}/config/config.yaml"


# The HTML report's front page (snakemake --report): what the workflow does, for this run.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/slurm_checks.smk"


# The target and the Markdown report are quick: they run on the submitting host, not as cluster jobs.
localrules:
    all,
    report,


rule all:
    """The default target: the whole chain up to the report, every stage's outputs named (see
    chain_outputs in workflow/rules/common.smk)."""
    input:
        chain_outputs,


include: "workflow/rules/prepare_data.smk"
include: "workflow/rules/nb101_cells.smk"
include: "workflow/rules/encode_corpus.smk"
include: "workflow/rules/train_archgpt.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/trials.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/report.smk"
