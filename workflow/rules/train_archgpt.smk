rule train_archgpt:
    """Pre-train the architecture GPT on NAS-Bench-101, fine-tune on torchvision families."""
    input:
        pretrain=rules.encode_corpus.output.pretrain,
        finetune=rules.encode_corpus.output.finetune,
        vocab=rules.encode_corpus.output.vocab,
    output:
        pretrained=directory(f"{RUN}/archgpt/pretrained"),
        finetuned=directory(f"{RUN}/archgpt/finetuned"),
        metrics=report(
            f"{RUN}/archgpt/metrics.json", caption="../report/archgpt_metrics.rst", category="Architecture GPT"
        ),
        curves=report(
            f"{RUN}/archgpt/loss_curves.png", caption="../report/archgpt_curves.rst", category="Architecture GPT"
        ),
        headline=headline("train_archgpt"),
        timings=f"{RUN}/archgpt/timings.json",  # how long it took: read by no later stage
    params:
        archgpt=config["archgpt"],
        seed=config["seed"],
        device=config["device"],
        progress=config["progress"],
        code=code("train_archgpt"),
    log:
        f"{LOGS}/train_archgpt.log",
    threads: rule_threads("train_archgpt")
    resources:
        **rule_resources("train_archgpt"),
    conda:
        "../envs/lmnas.yaml"
    script:
        "../scripts/train_archgpt.py"
