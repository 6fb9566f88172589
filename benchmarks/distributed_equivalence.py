"""2 gloo ranks (torchrun, CPU) against 1 process at the same global batch: how far apart, in numbers.

Three comparisons, each a real `torch.distributed.run` launch of the code the retrain rule runs:

- `ddp-worker`: the BatchNorm-free network of tests/test_distributed.py (no augmentation,
  100 images in global batches of 32, split 13 + 12 over the ranks on the last one): the only
  difference left is float32 summation order, so the ranks must follow the single process within
  the tolerance the tests assert (rtol 1e-5, atol 1e-6).
- `retrain`: `retrain_best` on digits 0-2 with a BatchNorm network and crop augmentation, 1 process
  vs 2 ranks: per-rank batch statistics and per-rank augmentation streams make them differ by
  design (the test only asserts both learn: |test_acc difference| < 0.15).
- `kill-resume`: the 2-rank retrain with its whole torchrun launch SIGKILLed after the first epoch's
  checkpoint, rerun, against the uninterrupted 2-rank run: expected identical bit for bit.

    python benchmarks/distributed_equivalence.py [--epochs 4] [--out benchmarks/out/distributed_equivalence.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from _common import print_table, write_result

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))  # the rank body of the gradient worker lives with its test
from test_distributed import ONE_THREAD, SRC, worker_fit  # noqa: E402

from lmnas.data import DatasetSpec, prepare_dataset  # noqa: E402
from lmnas.retrain import retrain_args, retrain_best  # noqa: E402
from lmnas.spaces import create_space  # noqa: E402
from lmnas.training import distributed  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6  # what tests/test_distributed.py and tests/test_slurm_multinode.py assert


def max_abs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def max_rel(a: list[dict], b: list[dict], keys: tuple[str, ...]) -> float:
    """The largest relative difference of the per-epoch values `keys` of two histories."""
    return max(abs(x[k] - y[k]) / max(abs(y[k]), 1e-12) for x, y in zip(a, b, strict=True) for k in keys)


def ddp_worker(tmp: Path) -> dict:
    t = time.perf_counter()
    single, history = worker_fit("cpu")
    one_s = time.perf_counter() - t
    out = tmp / "ranks.pt"
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        distributed.launch("test_distributed", ["--worker", str(out)], 2,
                           env={**ONE_THREAD, "PYTHONPATH": os.pathsep.join([str(TESTS), str(SRC)])})
    two_s = time.perf_counter() - t
    ranks = torch.load(out, weights_only=True)
    state = {k: v.detach() for k, v in single.state_dict().items()}
    within = all(torch.allclose(ranks["state"][k], v, rtol=RTOL, atol=ATOL) for k, v in state.items())
    return {"weights_max_abs_diff": max_abs(ranks["state"], state),
            "loss_max_rel_diff": max_rel(ranks["history"], history, ("train_loss", "val_loss")),
            "acc_max_abs_diff": max(abs(x[k] - y[k]) for x, y in zip(ranks["history"], history)
                                    for k in ("train_acc", "val_acc")),
            "final_train_loss": [history[-1]["train_loss"], ranks["history"][-1]["train_loss"]],
            "within_tolerance": within, "seconds": [one_s, two_s]}


def digits(tmp: Path) -> Path:
    manifest = prepare_dataset(DatasetSpec(source="digits", classes=[0, 1, 2]), tmp / "data", seed=0)
    space = create_space("gptnas-blocks", min_blocks=2, max_blocks=4, stage_widths=[16, 32],
                         input_shape=manifest["image_shape"], num_classes=manifest["num_classes"])
    (tmp / "best.json").write_text(json.dumps({"genotype": "conv-basic-conv", "space": space.settings()}))
    return tmp


def run_retrain(root: Path, out: str, recipe: dict, nproc: int) -> tuple[dict, float]:
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        metrics = retrain_best(root / "best.json", root / "data", root / out, recipe, seed=0, device="cpu",
                               nproc=nproc, progress=False)
    return metrics, time.perf_counter() - t


def kill_after_first_epoch(root: Path, out: str, recipe: dict) -> int:
    """Start the 2-rank retrain, SIGKILL its whole launch once epoch 1 is checkpointed; the epoch kept."""
    args = retrain_args(root / "best.json", root / "data", root / out, recipe, seed=0, device="cpu", progress=False)
    command = distributed.launch_command("lmnas.retrain", args, distributed.Topology(1, 2))
    launch = subprocess.Popen(command, env={**os.environ, **ONE_THREAD, "PYTHONPATH": str(SRC)},
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = root / out / "checkpoints"
    while not (checkpoints / "epoch-0001.pt").exists():
        if launch.poll() is not None:
            raise SystemExit("the 2-rank run ended before its first checkpoint")
        time.sleep(0.02)
    os.killpg(launch.pid, signal.SIGKILL)
    launch.wait()
    time.sleep(2)  # ranks die with their agent (parent-death signal); let them go before the rerun
    if (root / out / "metrics.json").exists():
        raise SystemExit("killed too late: the run had finished")
    return max(int(p.stem.split("-")[1]) for p in checkpoints.glob("epoch-*.pt"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4, help="retrain epochs (digits 0-2)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.update(ONE_THREAD)
    recipe = {"epochs": args.epochs, "batch_size": 32, "lr": 0.05, "crop_padding": 1, "flip": False,
              "schedule": "cosine"}
    with tempfile.TemporaryDirectory(prefix="lmnas-ddp-eq-") as tmp:
        worker = ddp_worker(Path(tmp))
        root = digits(Path(tmp))
        one, one_s = run_retrain(root, "one", recipe, 1)
        two, two_s = run_retrain(root, "two", recipe, 2)
        w_one, w_two = load_file(root / "one" / "model.safetensors"), load_file(root / "two" / "model.safetensors")
        t = time.perf_counter()
        killed_at = kill_after_first_epoch(root, "killed", recipe)
        resumed, _ = run_retrain(root, "killed", recipe, 2)
        kill_s = time.perf_counter() - t
        w_resumed = load_file(root / "killed" / "model.safetensors")
    ignore = {"seconds", "train_images_per_s", "resumed_from_epoch"}
    result = {
        "tolerance": {"rtol": RTOL, "atol": ATOL},
        "ddp_worker": worker,
        "retrain": {"recipe": recipe, "test_acc": [one["test_acc"], two["test_acc"]],
                    "test_loss": [one["test_loss"], two["test_loss"]],
                    "train_loss": [one["train_loss"], two["train_loss"]],
                    "weights_max_abs_diff": max_abs(w_one, w_two), "seconds": [one_s, two_s]},
        "kill_resume": {"killed_after_epoch": killed_at, "resumed_from_epoch": resumed["resumed_from_epoch"],
                        "weights_max_abs_diff": max_abs(w_resumed, w_two),
                        "metrics_differ": sorted(k for k in two if k not in ignore and two[k] != resumed.get(k)),
                        "seconds": kill_s},
    }
    print("2 gloo ranks vs 1 process, same global batch (CPU)\n")
    print_table(["comparison", "max |Δw|", "max rel Δloss", "test_acc 1p / 2r", "tolerance", "holds", "s (1p / 2r)"], [
        ["ddp-worker (no BN)", worker["weights_max_abs_diff"], worker["loss_max_rel_diff"], "-",
         f"rtol {RTOL:g} atol {ATOL:g}", worker["within_tolerance"],
         f"{worker['seconds'][0]:.1f} / {worker['seconds'][1]:.1f}"],
        ["retrain digits (BN, aug)", result["retrain"]["weights_max_abs_diff"],
         abs(one["test_loss"] - two["test_loss"]) / one["test_loss"],
         f"{one['test_acc']:.4f} / {two['test_acc']:.4f}", "|Δacc| < 0.15", abs(one["test_acc"] - two["test_acc"]) < 0.15,
         f"{one_s:.1f} / {two_s:.1f}"],
        [f"2r killed@{killed_at} + resumed vs 2r", result["kill_resume"]["weights_max_abs_diff"], "-",
         f"{two['test_acc']:.4f} / {resumed['test_acc']:.4f}", "equal",
         result["kill_resume"]["weights_max_abs_diff"] == 0 and not result["kill_resume"]["metrics_differ"],
         f"{kill_s:.1f}"],
    ])
    write_result("distributed_equivalence", result, args.out)


if __name__ == "__main__":
    main()
