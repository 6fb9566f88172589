"""Plots people would rather look at than read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmnas.io import write_with


def plot_training_log(log: list[dict[str, Any]], path: Path, title: str) -> None:
    """Accuracy and loss per epoch (train and val) side by side, from a log.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) for r in log]

    def series(name: str) -> list[float]:
        return [float(r[name]) if r.get(name) not in (None, "") else float("nan") for r in log]

    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=120)
    for split in ("train", "val"):
        acc_ax.plot(epochs, [100 * v for v in series(f"{split}_acc")], label=split)
        loss_ax.plot(epochs, series(f"{split}_loss"), label=split)
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title=f"{title}: accuracy")
    loss_ax.set(xlabel="epoch", ylabel="loss", title=f"{title}: loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp))
    plt.close(fig)
