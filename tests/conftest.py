"""Fixtures shared by several test files."""

import pytest
import torch


@pytest.fixture(scope="session")
def archgpt_dir(tmp_path_factory):
    """A tiny architecture GPT trained on a generated NAS-Bench-101 corpus + the torchvision families."""
    from lmnas.archgpt import ArchGPTConfig, train_archgpt
    from lmnas.corpus import encode_corpus

    root = tmp_path_factory.mktemp("archgpt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encode_corpus(root / "missing.json", root / "corpus", generate_if_missing=30, seed=0)
        train_archgpt(root / "corpus", root / "gpt", cfg=ArchGPTConfig(n_embd=32), pretrain_epochs=1,
                      finetune_epochs=1, batch_size=64, lr=1e-3, seed=0, progress=False)
    finally:
        torch.set_num_threads(threads)
    return root / "gpt" / "finetuned"
