"""Candidate training speed: a plain torchvision DataLoader + fp32 loop vs lmnas's evaluator loop.

Both train the same GPT-NAS block-space candidate on the same data with the same recipe
(SGD, batch 512 by default, random crop + flip), measured in one run. Prints images/s,
seconds per 6-epoch candidate, peak GPU memory and the ratio; writes JSON. Also the
estimated GPU-hours of a full GA+GPT CIFAR-10 search (600 candidates × 6 epochs × 50k).

    python benchmarks/train_speed.py                      # CPU-sized defaults
    python benchmarks/train_speed.py --images 50000 --epochs 2 --device cuda --compile
"""

from __future__ import annotations

import argparse
import random
import time

import torch
import torchvision.transforms.v2 as T
from torch import nn
from torch.utils.data import DataLoader, Dataset

from _common import machine, print_table, write_result
from lmnas.spaces import create_space
from lmnas.training import TrainRecipe, train_model

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class UInt8Images(Dataset):
    """What a typical implementation does: per-image transforms in DataLoader workers."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.transform = T.Compose([
            T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
            T.ToDtype(torch.float32, scale=True), T.Normalize(MEAN, STD),
        ])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def plain_loop(model: nn.Module, images, labels, recipe: TrainRecipe, device: str, workers: int) -> float:
    loader = DataLoader(UInt8Images(images, labels), batch_size=recipe.batch_size, shuffle=True,
                        num_workers=workers, drop_last=False, persistent_workers=workers > 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    model.to(device).train()
    start = time.perf_counter()
    for _ in range(recipe.epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            loss.item()  # the usual per-step logging sync
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2048, help="training images (CIFAR-10 has 50,000)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--blocks", type=int, default=12, help="candidate depth (GPT-NAS: 10–20)")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the plain loop")
    parser.add_argument("--compile", action="store_true", help="torch.compile in the lmnas loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()

    space = create_space("gptnas-blocks", min_blocks=args.blocks, max_blocks=args.blocks, stage_widths=args.widths)
    genotype = space.sample(random.Random(args.seed))
    generator = torch.Generator().manual_seed(args.seed)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (args.images,), generator=generator)
    recipe = TrainRecipe(epochs=args.epochs, batch_size=args.batch_size, lr=0.01, warmup_epochs=0,
                         schedule="constant", compile=args.compile)
    cuda = args.device.startswith("cuda")

    def fresh_model() -> nn.Module:
        torch.manual_seed(args.seed)
        return space.build(genotype)

    results = {}
    for name in ("plain", "lmnas"):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        if name == "plain":
            seconds = plain_loop(fresh_model(), images, labels, recipe, args.device, args.workers)
        else:
            # Warm-up epoch excluded for compile; data moves to the device inside train_model.
            out = train_model(fresh_model(), (images, labels), None, recipe, mean=MEAN, std=STD,
                              device=args.device, seed=args.seed, progress=False)
            seconds = out.seconds
        images_per_s = args.images * args.epochs / seconds
        results[name] = {
            "seconds": seconds,
            "images_per_s": images_per_s,
            "seconds_per_candidate_6ep_cifar10": 6 * 50_000 / images_per_s,
            "peak_gpu_mem_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        }
    ratio = results["lmnas"]["images_per_s"] / results["plain"]["images_per_s"]
    search_gpu_hours = 600 * results["lmnas"]["seconds_per_candidate_6ep_cifar10"] / 3600

    print(f"candidate {space.key(genotype)} ({args.blocks} blocks, widths {args.widths}); {machine()}")
    print_table(
        ["loop", "images/s", "s / 6-epoch CIFAR-10 candidate", "peak GPU MB"],
        [[k, v["images_per_s"], v["seconds_per_candidate_6ep_cifar10"], v["peak_gpu_mem_mb"] or "-"]
         for k, v in results.items()],
    )
    print(f"speed-up lmnas / plain: {ratio:.2f}x; GA+GPT search (600 candidates x 6 epochs): "
          f"{search_gpu_hours:.2f} {'GPU' if cuda else 'CPU'}-hours")
    write_result("train_speed", {
        "args": vars(args), "genotype": space.key(genotype), "results": results,
        "speedup": ratio, "search_600_candidates_hours": search_gpu_hours,
    }, args.out)


if __name__ == "__main__":
    main()
