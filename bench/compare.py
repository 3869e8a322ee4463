"""The seed's mlp VAE against the conv VAE on the same data, split, budget and hidden/latent sizes.

    python -m bench.compare [--quick] [--epochs 30] [--images 2048] [--size 32] [--hidden 512] [--latent 32]

Prints one markdown table (test -ELBO, IWAE bits/dim, PSNR, SSIM, active units, seconds) and writes
bench/results/compare.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from lego_vae.training import train

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = [("test -ELBO", "test_loss", ".2f"), ("IWAE bits/dim", "bits_per_dim", ".4f"), ("PSNR dB", "psnr", ".2f"),
           ("SSIM", "ssim", ".4f"), ("active units", "active_units", "d"), ("seconds", "seconds", ".0f")]


def run(arch: str, args: argparse.Namespace, out: Path) -> dict:
    """Train and evaluate one architecture; its metrics.json."""
    overrides = [
        f"model={arch}", f"model.hidden={args.hidden}", f"model.latent={args.latent}",
        f"data.image_size={args.size}", f"data.num_images={args.images}", f"trainer.max_epochs={args.epochs}",
        "trainer.accelerator=cpu" if args.cpu else "trainer.accelerator=auto",
        "log.progress=none", "log.images_every_n_epochs=0", f"data.cache_dir={args.cache_dir}",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return train(cfg, out / arch)


def table(rows: dict[str, dict]) -> str:
    """The comparison as a markdown table."""
    lines = ["| model | " + " | ".join(c for c, _, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for arch, m in rows.items():
        cells = [format(m[k], f) if m.get(k) is not None else "—" for _, k, f in COLUMNS]
        lines.append(f"| {arch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-sized: 16 px, 256 faces, 2 epochs")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--latent", type=int, default=32)
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is")
    parser.add_argument("--cache-dir", default=".cache/lego_vae")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.images, args.size, args.hidden, args.latent = 2, 256, 16, 64, 8
    with tempfile.TemporaryDirectory() as tmp:
        rows = {arch: run(arch, args, Path(tmp)) for arch in ("mlp", "conv")}
    settings = {k: getattr(args, k) for k in ("epochs", "images", "size", "hidden", "latent")}
    machine = {"cpu": platform.processor() or platform.machine(), "cores": torch.get_num_threads(),
               "torch": torch.__version__, "device": "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"}
    print(f"budget: {settings}; machine: {machine}")
    print(table(rows))
    result = {"name": "compare", "machine": machine, "settings": settings, "results": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
