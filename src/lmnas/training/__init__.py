"""Training: recipes and schedules, device-side augmentation, the loop, resumable checkpoints."""

from lmnas.training.augment import augment_batch, normalize
from lmnas.training.checkpoint import Checkpoint, load_latest, save_checkpoint, save_weights
from lmnas.training.loop import TrainResult, evaluate, train_model
from lmnas.training.recipe import PRESETS, TrainRecipe, lr_at

__all__ = [
    "PRESETS",
    "Checkpoint",
    "TrainRecipe",
    "TrainResult",
    "augment_batch",
    "evaluate",
    "load_latest",
    "lr_at",
    "normalize",
    "save_checkpoint",
    "save_weights",
    "train_model",
]
