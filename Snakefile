# lmnas: the stage chain. Each stage is one rule file; see README.md and ../shared/DESIGN.md.
# The embedded default, found beside this file whatever the working directory (--directory).
configfile: f"{workflow.basedir}/config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/slurm_checks.smk"


rule all:
    """The default target: the whole chain up to the report."""
    input:
        f"{RUN}/report/report.md",


include: "workflow/rules/prepare_data.smk"
include: "workflow/rules/encode_corpus.smk"
include: "workflow/rules/train_archgpt.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/report.smk"
