"""Seconds per epoch of batches (no model): the project's cached datamodule against torchvision's ImageFolder.

    python -m bench.data_pipeline [--quick] [--out DIR] [--repeats 7] [--images 2600] [--size 64] [--threads N]

What is compared, and why it is fair:
- Both sides read the same JPEG files: synthetic faces (`render_faces`, 128 px) written once into a
  temporary folder with one class subfolder, reused by every repeat.
- "ours" is `LegoFacesDataModule` with the `folder` source on that folder. Its first run decodes every
  file once (`prepare_data` into an empty cache folder): that is timed and reported on its own, as is
  `setup` (loading the cache), which every later run pays once. An epoch is then iterating
  `train_dataloader()` and turning each uint8 batch into floats in [0, 1] with the datamodule's own
  `on_after_batch_transfer`, the form a model consumes.
- "torchvision" is the common recipe: `ImageFolder` with `Resize(size)`, `CenterCrop(size)`,
  `ToTensor()` and `DataLoader(num_workers=2, batch_size=64, shuffle=True)`, decoding every JPEG every
  epoch; its workers start each epoch (no persistent_workers), as the recipe has it. It yields float
  tensors in [0, 1] too.
- Both iterate the same images: the torchvision dataset is restricted (`Subset`) to the datamodule's
  train split, so an epoch is the same number of the same images on both sides.
- Epochs are timed interleaved (`common.interleaved`) in one process; medians and their ratio, and
  the machine's load average. On this shared 2-core machine torch's two OpenMP threads slow down
  many-fold on the small per-batch ops whenever another process takes a core (the torchvision
  workers run one thread each); `--threads 1` gives steadier numbers on a busy machine.

Target: the datamodule's epoch is at least 20x faster than the torchvision epoch.

A second measurement, the training pool (`data.extra_train_faces`): synthetic faces rendered once into
the cache for training only. Its cost must stay off the training step: seconds per batch of the train
loader with `--pool` extra faces against the seed's 2,600 alone (interleaved, the same batch size),
and the one-off rendering time per face, which `prepare_data` pays once. The same pool of LDraw printed
heads (`data=ldraw`) is rendered after it in the same process: target, about the synthetic pool's time or less.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

from PIL import Image
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from bench import common
from lego_vae.config import default_data
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.data.synthetic import render_faces

NAME = "data_pipeline"
TARGET = 20.0  # torchvision epoch / our epoch
CLASS = "faces"  # ImageFolder wants one subfolder per class


def write_jpegs(root: Path, n: int, render_size: int) -> Path:
    """n synthetic faces as JPEG files under root/faces; returns root."""
    (root / CLASS).mkdir(parents=True, exist_ok=True)
    pixels, _ = render_faces(n, size=render_size)
    for i, face in enumerate(pixels):
        Image.fromarray(face).save(root / CLASS / f"{i:05d}.jpg", quality=90)
    return root


def datamodule(root: Path, size: int, batch_size: int, cache_dir: Path) -> LegoFacesDataModule:
    """The project's datamodule on the JPEG folder (the `folder` source, every image)."""
    return LegoFacesDataModule.from_config(default_data("folder", root=str(root), image_size=size, num_images=None,
                                                        batch_size=batch_size, cache_dir=str(cache_dir)))


def torchvision_loader(root: Path, train_names: list[str], size: int, batch_size: int, workers: int) -> DataLoader:
    """The common recipe over the same train images: ImageFolder + Resize/CenterCrop/ToTensor + DataLoader."""
    tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()])
    folder = datasets.ImageFolder(str(root), transform=tf)
    position = {Path(path).relative_to(root).as_posix(): i for i, (path, _) in enumerate(folder.samples)}
    subset = Subset(folder, [position[name] for name in train_names])
    return DataLoader(subset, batch_size=batch_size, shuffle=True, num_workers=workers)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the tables and return (and write) the result dict."""
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="epochs of each side, interleaved")
    p.add_argument("--cache-repeats", type=int, default=3, help="first runs (cache builds) timed")
    p.add_argument("--images", type=int, default=2600)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--render-size", type=int, default=128, help="pixel size of the JPEG files")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="torchvision DataLoader workers")
    p.add_argument("--pool", type=int, default=20000, help="extra training faces of the pool measurement")
    args = p.parse_args(argv)
    with common.limit_threads(common.threads_of(args)):
        return run(args)


def run(args: argparse.Namespace) -> dict:
    """The benchmark itself, for parsed arguments."""
    # Other processes on this shared machine are the main source of noise: the load is recorded with the result.
    load_before = os.getloadavg()[0]
    if args.quick:
        # Worker processes are the slow part of a smoke run and not what it checks.
        args.repeats, args.cache_repeats, args.images, args.size, args.render_size, args.workers = 2, 1, 200, 32, 64, 0

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        started = time.perf_counter()
        root = write_jpegs(tmp_path / "jpegs", args.images, args.render_size)
        print(f"wrote {args.images} JPEGs of {args.render_size} px in {time.perf_counter() - started:.1f}s")

        # First runs: prepare_data on an empty cache folder each time (decode every file, write the cache).
        builds = itertools.count()

        def build() -> float:
            dm = datamodule(root, args.size, args.batch_size, tmp_path / f"cache-{next(builds)}")
            start = time.perf_counter()
            dm.prepare_data()
            return time.perf_counter() - start

        first_runs = common.interleaved({"cache build": build}, args.cache_repeats)["cache build"]

        # A later run: the cache exists; setup loads it once, then epochs index the tensor.
        dm = datamodule(root, args.size, args.batch_size, tmp_path / "cache-0")
        start = time.perf_counter()
        dm.setup("fit")
        setup_s = time.perf_counter() - start
        train_names = [dm.names[i] for i in dm.split_indices["train"].tolist()]
        tv_loader = torchvision_loader(root, train_names, args.size, args.batch_size, args.workers)
        epochs = itertools.count()
        seen: dict[str, int] = {}

        def ours() -> None:
            loader = dm.train_dataloader()
            loader.set_epoch(next(epochs))  # a new shuffle each epoch, as Lightning would ask
            n = 0
            for batch in loader:
                x = dm.on_after_batch_transfer(batch, 0)  # uint8 -> float in [0, 1], what a step receives
                n += len(x)
            seen["ours"] = n

        def torchvision() -> None:
            n = 0
            for x, _ in tv_loader:
                n += len(x)
            seen["torchvision"] = n

        times = common.interleaved({"ours": ours, "torchvision": torchvision}, args.repeats)

    if seen["ours"] != seen["torchvision"]:
        raise RuntimeError(f"the two sides iterated different epochs: {seen}")
    n = seen["ours"]
    ours_s, tv_s, build_s = common.median(times["ours"]), common.median(times["torchvision"]), common.median(first_runs)
    speedup = tv_s / ours_s
    results = [
        {"row": "ours: first run (decode all files, write cache)", "images": args.images, "seconds": build_s,
         "images/s": args.images / build_s},
        {"row": "ours: later run start-up (setup: load cache)", "images": args.images, "seconds": setup_s,
         "images/s": args.images / setup_s},
        {"row": "ours: epoch", "images": n, "seconds": ours_s, "images/s": n / ours_s},
        {"row": "torchvision: epoch", "images": n, "seconds": tv_s, "images/s": n / tv_s},
    ]
    targets = [
        common.target("torchvision epoch / our epoch", f">= {TARGET:g}x", speedup, speedup >= TARGET),
        # Not targets: the fastest epochs (other processes only ever add time), and how many torchvision
        # epochs the one-off decode costs.
        common.target("torchvision / our epoch, fastest of each (info)", "—",
                      min(times["torchvision"]) / min(times["ours"]), None),
        common.target("first run / torchvision epoch (info)", "—", build_s / tv_s, None),
    ]
    settings = {
        "quick": args.quick, "images": args.images, "jpeg_px": args.render_size, "size": args.size,
        "batch_size": args.batch_size, "torchvision_workers": args.workers, "repeats": args.repeats,
        "cache_repeats": args.cache_repeats, "split": "train split of the datamodule on both sides",
        "ours_epoch": "train_dataloader() + on_after_batch_transfer (uint8 -> float)",
        "torchvision_epoch": "ImageFolder + Resize/CenterCrop/ToTensor, DataLoader(shuffle=True), workers start per epoch"
    }
    settings["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0],
                                     "cores": len(os.sched_getaffinity(0))}
    pool_results, pool_targets = pool_rows(args)
    return common.report(NAME, settings, results + pool_results, targets + pool_targets, args.out)


def pool_rows(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """Seconds per train batch with args.pool extra rendered faces against none, and the pool's one-off render."""
    pool = 200 if args.quick else args.pool
    with tempfile.TemporaryDirectory() as tmp:
        def module(extra: int, source: str = "synthetic") -> LegoFacesDataModule:
            return LegoFacesDataModule.from_config(default_data(source, image_size=args.size, num_images=2600,
                                                                batch_size=args.batch_size, cache_dir=tmp,
                                                                extra_train_faces=extra))

        seed_set, pooled = module(0), module(pool)
        seed_set.setup("fit")
        start = time.perf_counter()
        pooled.prepare_data()
        render_s = time.perf_counter() - start
        pooled.setup("fit")
        batches = len(seed_set.train_dataloader())
        epochs = itertools.count()

        def batches_of(dm: LegoFacesDataModule):
            def run() -> None:
                loader = dm.train_dataloader()
                loader.set_epoch(next(epochs))
                for x, _ in zip(loader, range(batches)):  # the same number of batches on both sides
                    dm.on_after_batch_transfer(x, 0)
            return run

        times = common.interleaved({"seed set": batches_of(seed_set), "pool": batches_of(pooled)}, args.repeats)
        # The same pool of LDraw printed heads (data=ldraw): the one-off render of the real designs, right after
        # the synthetic pool's in the same process.
        start = time.perf_counter()
        module(pool, "ldraw").prepare_data()
        ldraw_s = time.perf_counter() - start
    seed_s, pool_s = (common.median(times[k]) / batches for k in ("seed set", "pool"))
    results = [
        {"row": f"pool: 2,600 + {pool} faces rendered once into the cache", "images": 2600 + pool,
         "seconds": render_s, "images/s": (2600 + pool) / render_s},
        {"row": "train batch, seed's 2,600 faces", "images": args.batch_size, "seconds": seed_s,
         "images/s": args.batch_size / seed_s},
        {"row": f"train batch, + {pool} extra faces", "images": args.batch_size, "seconds": pool_s,
         "images/s": args.batch_size / pool_s},
    ]
    results.append({"row": f"ldraw pool: 2,600 + {pool} printed heads rendered once into the cache",
                    "images": 2600 + pool, "seconds": ldraw_s, "images/s": (2600 + pool) / ldraw_s})
    ratio, render_ratio = pool_s / seed_s, ldraw_s / render_s
    return results, [common.target("pool batch / seed-set batch (the pool's cost on a step)", "<= 1.1x", ratio,
                                   ratio <= 1.1),
                     common.target("ldraw pool render / synthetic pool render (one-off)", "<= 1.1x", render_ratio,
                                   render_ratio <= 1.1)]


if __name__ == "__main__":
    main()
