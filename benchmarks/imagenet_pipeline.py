"""ImageNet-shaped data pipeline: prepare (encoded shards) and loader throughput, extrapolated to ImageNet-1k.

Makes a synthetic ImageFolder of photo-like JPEGs (~440 x 370 px: gradients, shapes, noise; PIL
quality 90, ~100-130 kB each) at two sizes (a third with --sizes 1000 4000 8000), prepares each in a
child process (source bytes, the default; and re-encoded at shorter side 256 on the smallest size), and
measures:
  prepare CPU seconds per image (user+sys of the process and its pool, so per core), peak RSS of the
  prepare process (and its RSS after the imports, before any image) and of its largest pool worker
  (getrusage in the child), whether that peak is flat across sizes (within FLAT_MARGIN), the bytes the
  file listing holds per image (tracemalloc), bytes per image on disk;
  loader images/s with one and two DataLoader workers for GENIUS's timm recipe (RandomResizedCrop
  224 with random interpolation, flip, RandAugment rand-m9-mstd0.5, random erasing 0.2) and for the
  plain recipe (RandomResizedCrop 224 + flip, uint8 out), and the RSS of each loader process;
then extrapolates to ImageNet-1k (1,281,167 train images, ~110 kB average JPEG).

    python benchmarks/imagenet_pipeline.py                    # 1,000 and 4,000 train images
    python benchmarks/imagenet_pipeline.py --sizes 1000 4000 8000 --keep /tmp/bench  # reuses made folders
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from _common import machine, print_table, write_result
from lmnas.data import decode_image, open_encoded_split, read_manifest
from lmnas.data.encode import EncodeSpec, encode_image, pixel_sums

IMAGENET_TRAIN = 1_281_167
IMAGENET_FILES = IMAGENET_TRAIN + 50_000  # the listing holds train and val
FLAT_MARGIN = 0.05  # peak prepare RSS counts as flat when every size is within 5 % of the smallest's
IMAGENET_JPEG_BYTES = 110_000
H100_IMG_S = 4_000
TODAY = {"prepare_ram_gb": 460, "disk_gb": 186, "ram_per_rank_gb": 200}  # issue 17, raw 224 px shards
CLASSES = 10


# --------------------------------------------------------------------------- synthetic ImageFolder


def _photo(seed: int) -> bytes:
    """One photo-like JPEG: a smooth two-colour gradient, a few soft shapes, sensor-like noise."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(400, 481)), int(rng.integers(340, 401))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy) / max(width, height)
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    pixels = a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]
    picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(20, 200)), y0 + int(rng.integers(20, 200))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    picture = picture.filter(ImageFilter.GaussianBlur(0.8))
    noisy = np.asarray(picture, dtype=np.float32) + rng.normal(0, 36, (height, width, 3))  # texture: ~110 kB at q90
    out = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _write_one(job: tuple[str, int]) -> int:
    path, seed = job
    data = _photo(seed)
    Path(path).write_bytes(data)
    return len(data)


def make_imagefolder(root: Path, train: int, workers: int) -> float:
    """train images + train/10 val images over CLASSES classes; returns the mean JPEG size in bytes.

    A folder this function completed before (its marker file) is reused: same seeds, same files."""
    marker = root / "made.json"
    if marker.is_file():
        return json.loads(marker.read_text())["mean_jpeg_bytes"]
    jobs = []
    for part, count, offset in (("train", train, 0), ("val", max(CLASSES, train // 10), 10_000_000)):
        for i in range(count):
            wnid = f"n{i % CLASSES:08d}"
            folder = root / part / wnid
            folder.mkdir(parents=True, exist_ok=True)
            # ImageNet's own names, so the file listing holds what it would for ImageNet
            name = f"{wnid}_{i}.JPEG" if part == "train" else f"ILSVRC2012_val_{i + 1:08d}.JPEG"
            jobs.append((str(folder / name), offset + i))
    with ProcessPoolExecutor(workers) as pool:
        sizes = list(pool.map(_write_one, jobs, chunksize=32))
    marker.write_text(json.dumps({"train": train, "mean_jpeg_bytes": float(np.mean(sizes))}))
    return float(np.mean(sizes))


# --------------------------------------------------------------------------- prepare in a child process

_PREPARE_CHILD = """
import json, resource, sys, time, tracemalloc
from pathlib import Path
import torchvision.datasets.folder
from lmnas.data import DatasetSpec, prepare_dataset
from lmnas.data.sources import load_source
def rss_mb():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) / 1024
args = json.loads(sys.argv[1])
spec = DatasetSpec(**args["spec"])
base_rss = rss_mb()  # the imports (torch, torchvision, pyarrow): no image yet
tracemalloc.start()  # what the file listing alone holds, per listed image, and its transient peak
listing = load_source(spec, 0)
held, peak = tracemalloc.get_traced_memory()
rows = len(listing.labels)
del listing
tracemalloc.stop()
before = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
start = time.perf_counter()
manifest = prepare_dataset(spec, Path(args["out"]), seed=0, workers=args["workers"])
wall = time.perf_counter() - start
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "cpu_s": sum(u.ru_utime + u.ru_stime for u in (me, kids)) - sum(u.ru_utime + u.ru_stime for u in before),
                  "peak_rss_mb": me.ru_maxrss / 1024, "peak_worker_rss_mb": kids.ru_maxrss / 1024, "base_rss_mb": base_rss,
                  "listing_bytes_per_image": held / rows, "listing_peak_bytes_per_image": peak / rows,
                  "stats_sample": manifest["stats_sample"], "count": sum(s["count"] for s in manifest["splits"].values())}))
"""


def run_prepare(root: Path, out: Path, encode: dict | None, workers: int) -> dict:
    spec = {"source": "imagenet", "root": str(root), "image_size": 224, "val_fraction": 0.01, "encode": encode}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                                       os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _PREPARE_CHILD, json.dumps({"spec": spec, "out": str(out), "workers": workers})],
                          capture_output=True, text=True, env=env, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["disk_bytes"] = sum(p.stat().st_size for p in out.glob("*.parquet"))
    result["bytes_per_image"] = result["disk_bytes"] / result["count"]
    return result


def per_image_cpu_s(root: Path, work, images: int = 100) -> float:
    """CPU seconds of `work(bytes)` per image, in this process, over the first `images` train files."""
    blobs = [p.read_bytes() for p in sorted((root / "train").rglob("*.JPEG"))[:images]]
    start = time.process_time()
    for blob in blobs:
        work(blob)
    return (time.process_time() - start) / len(blobs)


# --------------------------------------------------------------------------- loader


class EncodedShards(torch.utils.data.IterableDataset):
    """Each worker reads its own shards, one row group at a time, decodes and transforms each image."""

    def __init__(self, folder: Path, split: str, transform, limit: int) -> None:
        self.shards = [s.path for s in open_encoded_split(folder, split)]
        self.transform, self.limit = transform, limit

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        produced, per_worker = 0, self.limit // workers
        while True:  # cycle over this worker's shards until its share of `limit` is produced
            for path in self.shards[worker::workers] or self.shards:
                shard = pq.ParquetFile(path)
                for group in range(shard.num_row_groups):
                    table = shard.read_row_group(group, columns=["image", "label"])
                    for data, label in zip(table.column("image").to_pylist(), table.column("label").to_pylist()):
                        yield self.transform(decode_image(data)), label
                        produced += 1
                        if produced >= per_worker:
                            return


def _transforms() -> dict:
    from timm.data import create_transform
    from torchvision import transforms

    genius = create_transform(224, is_training=True, auto_augment="rand-m9-mstd0.5", re_prob=0.2, re_mode="pixel",
                              interpolation="random", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    plain = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                transforms.PILToTensor()])
    return {"genius (timm RandAugment + erasing)": genius, "plain (RRC + flip, uint8)": plain}


def run_loader(folder: Path, transform, workers: int, images: int) -> dict:
    import psutil

    torch.set_num_threads(1)
    batch = 64  # the first batch of each worker is warm-up (worker start, first row group), not timed
    loader = torch.utils.data.DataLoader(EncodedShards(folder, "train", transform, images + batch * workers), batch_size=batch,
                                         num_workers=workers, persistent_workers=True, prefetch_factor=2)
    me = psutil.Process()
    iterator = iter(loader)
    for _ in range(workers):
        next(iterator)
    start, seen, worker_rss = time.perf_counter(), 0, 0.0
    for batch, _labels in iterator:
        seen += len(batch)
        worker_rss = max([worker_rss] + [c.memory_info().rss / 2**20 for c in me.children()])
    elapsed = time.perf_counter() - start
    rate = seen / elapsed
    # USS: the pages a worker owns alone; its RSS also counts the torch/timm pages shared with the parent (fork)
    worker_uss = max(c.memory_full_info().uss / 2**20 for c in me.children())
    return {"workers": workers, "images": seen, "images_per_s": rate, "images_per_s_per_worker": rate / workers,
            "main_rss_mb": me.memory_info().rss / 2**20, "worker_rss_mb": worker_rss, "worker_uss_mb": worker_uss}


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000],
                        help="train images of each set (two or more, e.g. 1000 4000 8000)")
    parser.add_argument("--workers", type=int, default=2, help="prepare pool and image-making processes")
    parser.add_argument("--loader-images", type=int, default=512, help="images timed per loader configuration")
    parser.add_argument("--keep", help="keep the synthetic data and shards here instead of a temporary folder")
    parser.add_argument("--out")
    args = parser.parse_args()
    if len(args.sizes) < 2 or sorted(set(args.sizes)) != args.sizes:
        parser.error(f"--sizes needs two or more distinct sizes in increasing order, got {args.sizes}")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lmnas-imagenet-bench-"))
    try:
        results = measure(work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    write_result("imagenet_pipeline", results, args.out)


def measure(work: Path, args: argparse.Namespace) -> dict:
    small, large = args.sizes[0], args.sizes[-1]
    prepare, source_bytes = {}, {}
    for n in args.sizes:
        start = time.perf_counter()
        source_bytes[n] = make_imagefolder(work / f"raw-{n}", n, args.workers)
        print(f"made {n} + {max(CLASSES, n // 10)} JPEGs, {source_bytes[n] / 1e3:.0f} kB mean, {time.perf_counter() - start:.0f} s")
        prepare[f"source-{n}"] = run_prepare(work / f"raw-{n}", work / f"prep-{n}", None, args.workers)
    prepare[f"resize256-{small}"] = run_prepare(work / f"raw-{small}", work / f"prep256-{small}",
                                                {"format": "jpeg", "shorter_side": 256, "quality": 90}, args.workers)
    stat_s = per_image_cpu_s(work / f"raw-{large}", pixel_sums)  # one channel-statistics image
    resize = EncodeSpec(format="jpeg", shorter_side=256, quality=90)
    reencode_s = per_image_cpu_s(work / f"raw-{large}", lambda blob: encode_image(blob, resize))
    a, b = prepare[f"source-{small}"], prepare[f"source-{large}"]
    # CPU per image beyond the fixed statistics sample: copying (source) or re-encoding (resize256).
    copy_s = ((b["cpu_s"] - a["cpu_s"]) - stat_s * (b["stats_sample"] - a["stats_sample"])) / (b["count"] - a["count"])
    rows = [[name, p["count"], p["cpu_s"] / p["count"] * 1e3, p["wall_s"], p["base_rss_mb"], p["peak_rss_mb"],
             p["peak_rss_mb"] - p["base_rss_mb"], p["peak_worker_rss_mb"], p["listing_bytes_per_image"],
             p["bytes_per_image"] / 1e3] for name, p in prepare.items()]
    print(machine())
    print("\nprepare (child process; CPU = user+sys of it and its pool; base = RSS after imports, before any image)")
    print_table(["run", "images", "CPU ms/img", "wall s", "base RSS MB", "peak RSS MB", "peak-base MB",
                 "worker RSS MB", "listing B/img", "kB/img disk"], rows)
    peaks = {n: prepare[f"source-{n}"]["peak_rss_mb"] for n in args.sizes}
    growth = max(peaks.values()) / peaks[small] - 1
    flat = {"peak_rss_mb": peaks, "growth_vs_smallest": growth, "margin": FLAT_MARGIN, "flat": growth <= FLAT_MARGIN}
    print(f"peak RSS by size (source bytes): {', '.join(f'{n:,}: {v:.0f} MB' for n, v in peaks.items())}; "
          f"largest is {growth:+.1%} of the smallest: {'flat' if flat['flat'] else 'NOT flat'} (margin {FLAT_MARGIN:.0%})")
    print(f"channel-stat image: {stat_s * 1e3:.1f} ms; copy: {copy_s * 1e3:.2f} ms/img; re-encode 256: {reencode_s * 1e3:.1f} ms/img")

    loader, rows = {}, []
    for name, transform in _transforms().items():
        for workers in (1, 2):
            result = run_loader(work / f"prep-{large}", transform, workers, args.loader_images)
            loader[f"{name} x{workers}"] = result
            rows.append([name, workers, result["images_per_s"], result["images_per_s_per_worker"],
                         result["main_rss_mb"], result["worker_rss_mb"], result["worker_uss_mb"]])
    print("\nloader over the encoded shards (torch DataLoader, persistent workers, 1 torch thread)")
    print_table(["recipe", "workers", "img/s", "img/s/worker", "main RSS MB", "worker RSS MB", "worker USS MB"], rows)

    genius = loader[f"{next(iter(_transforms()))} x1"]
    plain = loader[f"{list(_transforms())[1]} x1"]
    stored_ratio = b["bytes_per_image"] / source_bytes[large]  # Parquet overhead over the source JPEG
    workers_per_rank = 7
    # per listed file: the slope between the smallest and largest set (the class list etc. are fixed)
    listing_slope = ((b["listing_bytes_per_image"] * b["count"] - a["listing_bytes_per_image"] * a["count"])
                     / (b["count"] - a["count"]))
    listing_gb = IMAGENET_FILES * listing_slope / 2**30
    ram_rank_gb = (genius["main_rss_mb"] + workers_per_rank * genius["worker_uss_mb"]) / 1024
    extrapolation = {
        "disk_gb": IMAGENET_TRAIN * IMAGENET_JPEG_BYTES * stored_ratio / 1e9,
        "prepare_hours_source_1core": (IMAGENET_TRAIN * copy_s + 2000 * stat_s) / 3600,
        "prepare_hours_resize256_16cores": (IMAGENET_TRAIN * (reencode_s + copy_s) + 2000 * stat_s) / 3600 / 16,
        # the largest measured prepare (process + each pool worker's RSS, shared pages counted in each: an upper
        # bound) plus the file listing at ImageNet's 1.33M files; nothing else grows with the images
        "prepare_peak_ram_gb": max(p["peak_rss_mb"] + args.workers * p["peak_worker_rss_mb"] for p in prepare.values()) / 1024
        + listing_gb,
        "prepare_listing_gb": listing_gb,
        "listing_bytes_per_file": listing_slope,
        "ram_per_rank_gb_7_workers": ram_rank_gb,
        "cores_per_h100_genius": H100_IMG_S / genius["images_per_s_per_worker"],
        "cores_per_h100_plain": H100_IMG_S / plain["images_per_s_per_worker"],
    }
    print(f"\nImageNet-1k ({IMAGENET_TRAIN:,} train, {IMAGENET_JPEG_BYTES / 1e3:.0f} kB JPEG): extrapolated vs today")
    print_table(["figure", "encoded (this)", "today (raw 224 px)"], [
        ["disk GB", extrapolation["disk_gb"], TODAY["disk_gb"]],
        [f"prepare peak RAM GB ({args.workers} workers, incl. listing)", extrapolation["prepare_peak_ram_gb"], TODAY["prepare_ram_gb"]],
        [f"  of which the file listing GB ({listing_slope:.0f} B/file)", extrapolation["prepare_listing_gb"], "-"],
        ["prepare h, source bytes (1 core, copy-bound)", extrapolation["prepare_hours_source_1core"], "-"],
        ["prepare h, re-encode 256 px on 16 cores", extrapolation["prepare_hours_resize256_16cores"], "-"],
        ["RAM per rank GB (main RSS + 7 worker USS)", extrapolation["ram_per_rank_gb_7_workers"], TODAY["ram_per_rank_gb"]],
        [f"cores per H100 at {H100_IMG_S} img/s, GENIUS", extrapolation["cores_per_h100_genius"], "-"],
        [f"cores per H100 at {H100_IMG_S} img/s, plain", extrapolation["cores_per_h100_plain"], "-"],
    ])
    return {"sizes": args.sizes, "source_jpeg_bytes": source_bytes, "prepare": prepare, "prepare_rss_flat": flat,
            "stat_image_s": stat_s,
            "copy_s_per_image": copy_s, "reencode256_s_per_image": reencode_s, "loader": loader,
            "manifest_format": read_manifest(work / f"prep-{large}")["format"], "imagenet_1k": extrapolation,
            "today": TODAY}


if __name__ == "__main__":
    main()
