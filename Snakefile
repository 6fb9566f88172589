# lmnas: the stage chain. Each stage is one rule file; see README.md and ../shared/DESIGN.md.
configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare_data.smk"
include: "workflow/rules/encode_corpus.smk"
include: "workflow/rules/train_archgpt.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/report.smk"
