"""The architecture GPT of GPT-NAS: a small GPT over layer tokens plus an FCN block classifier.

Pre-trained on NAS-Bench-101 layer sequences, fine-tuned on torchvision models
(`train_archgpt`); at search time `ArchGPTPredictor` regenerates masked blocks.
"""

from lmnas.archgpt.classifier import BlockClassifier, ClassifierConfig, load_block_classifier, train_block_classifier
from lmnas.archgpt.model import ArchGPTConfig, build_model
from lmnas.archgpt.predictor import ArchGPTPredictor, BlockPrediction
from lmnas.archgpt.train import evaluate, train_archgpt
from lmnas.archgpt.windows import Corpus, Windows, load_vocab, make_windows, read_corpus, split_by_group

__all__ = [
    "ArchGPTConfig",
    "ArchGPTPredictor",
    "BlockClassifier",
    "BlockPrediction",
    "ClassifierConfig",
    "Corpus",
    "Windows",
    "build_model",
    "evaluate",
    "load_block_classifier",
    "load_vocab",
    "make_windows",
    "read_corpus",
    "split_by_group",
    "train_archgpt",
    "train_block_classifier",
]
