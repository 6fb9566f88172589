"""Augmentation throughput of the two training paths at ImageNet size, images/s per process.

The timm path (GENIUS's recipe: RandomResizedCrop with random interpolation, flip, RandAugment
rand-m9-mstd0.5, normalisation, random erasing 0.2) runs per image through PIL on the CPU in the
training process; the plain path runs batch-wide on the training device. This measures what one
process (one data-parallel rank) can feed: at 8 ranks and GENIUS's 500 epochs on 1.28 M images,
divide 1.28e6 × 500 / 8 by the timm rate for the augmentation time per rank.

    python benchmarks/timm_augment_throughput.py --images 256 --size 224
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import machine, print_table, write_result
from lmnas.training import TrainRecipe
from lmnas.training import timm_path
from lmnas.training.augment import augment_batch, normalize

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = torch.randint(0, 256, (args.images, 3, args.size, args.size), dtype=torch.uint8)
    recipe = TrainRecipe(epochs=1, batch_size=args.images, lr=0.1, rand_augment="rand-m9-mstd0.5", random_erasing=0.2,
                         random_resized_crop=True, crop_padding=0, label_smoothing=0.1)
    transform = timm_path.train_transform(recipe, args.size, MEAN, STD)
    mean, std = torch.tensor(MEAN), torch.tensor(STD)
    generator = torch.Generator().manual_seed(0)
    rows, results = [], {}
    for name, run in (("timm (per image, CPU)", lambda s: timm_path.augment(images, transform, s)),
                      ("plain (batch, CPU)", lambda s: normalize(augment_batch(images, generator, 4, True), mean, std))):
        run(0)  # warm-up
        rates = []
        for r in range(args.repeats):
            start = time.perf_counter()
            out = run(r + 1)
            rates.append(args.images / (time.perf_counter() - start))
        assert out.shape == (args.images, 3, args.size, args.size)
        mean_rate = sum(rates) / len(rates)
        rows.append([name, args.size, args.images, mean_rate, min(rates), max(rates)])
        results[name] = {"images_per_s": rates}
    print(machine())
    print_table(["path", "px", "images", "img/s (mean)", "min", "max"], rows)
    write_result("timm_augment_throughput", {"size": args.size, "images": args.images, "results": results}, args.out)


if __name__ == "__main__":
    main()
