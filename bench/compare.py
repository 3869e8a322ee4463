"""Quality side by side: the seed's model and the better options, on the same faces, split and budget.

    python -m bench.compare [--quick] [--epochs 30 | --steps 990] [--images 2600] [--size 64] [--hidden N]
                            [--latent N] [--runs mlp,conv,conv-calibrated,sharp,sharp-20k] [--arch resconv]

Rows (`make compare`): the seed's `mlp` with the `fixed` decoder; `conv` with `fixed`; `conv` with
`calibrated`; the same model sampled from the fitted `gmm` prior; `experiment=sharp` (the best recipe: conv, calibrated, cosine schedule, no clipping) with its `gmm` prior;
with `--steps`, also sharp with 20,000 more rendered training faces (`data.extra_train_faces`; the same
validation and test faces). `--steps N` trains every run exactly N optimizer steps (`make compare`: 990, the
30 epochs of 2,600 faces), so runs on different numbers of faces compare at equal steps.
`--arch resconv` adds that architecture with the sharp recipe twice: at the same epochs, and at the
same wall time as the sharp run (its epochs scaled by the two runs' measured trainer.fit seconds);
`--runs sharp --arch resconv` (`make compare-arch`) trains only what that comparison needs.
`--hidden` and `--latent` set one size for every run; without them each run keeps its recipe's own (conf's
512 and 32; `experiment=sharp_20k`'s 1024 and 64).
Every run is seeded. Prints one markdown table, writes bench/results/NAME.json and
the picture (docs/compare.png) (per row: 8 test faces above their reconstructions, and 16 samples from the row's prior).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from bench import common
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.evaluation.metrics import decoded_samples
from lego_vae.pictures import to_pil
from lego_vae.pipeline import train_and_evaluate
from lego_vae.runs import load_model
from lego_vae.strict_json import write_json

ROOT = Path(__file__).resolve().parents[1]
# One training per run; a row is a run read with one prior.
RUNS = {
    "mlp": ["model=mlp"],
    "conv": ["model=conv"],
    "conv-calibrated": ["model=conv", "model.likelihood=calibrated", "sample.prior=gmm"],
    "sharp": ["experiment=sharp", "sample.prior=gmm"],
    # The best recipe of docs/quality.md, experiment=sharp_20k: 20,000 more rendered training faces (the same
    # held-out faces), lr 5e-4, an 8x8 last feature map, a 64-d latent and 1,024 hidden units, at the comparison's
    # steps (--steps replaces its 13,200). The faces are named again so that --quick can shrink them (train_run).
    "sharp-20k": ["experiment=sharp_20k", "sample.prior=gmm", "data.extra_train_faces=20000"],
}
BASE_RUNS = ["mlp", "conv", "conv-calibrated", "sharp"]  # without --steps: runs of more faces would take more steps
ROWS = [  # (label, run, prior)
    ("mlp · fixed", "mlp", "normal"),
    ("conv · fixed", "conv", "normal"),
    ("conv · calibrated", "conv-calibrated", "normal"),
    ("conv · calibrated + gmm", "conv-calibrated", "gmm"),
    ("sharp · calibrated + gmm", "sharp", "gmm"),
    ("sharp_20k (+ 20k faces, lr 5e-4, 8x8 features, hidden 1024, latent 64) · calibrated + gmm", "sharp-20k", "gmm"),
]
ARCHES = ("resconv",)  # model= options that --arch can put beside the sharp run
COLUMNS = ["bits/dim", "PSNR dB", "SSIM", "active units", "attr acc recon (ceiling)", "mouth", "fd_judge N(0,I)",
           "fd_judge gmm", "precision", "recall", "epochs", "fit seconds", "seconds"]


def train_run(name: str, overrides: list[str], args: argparse.Namespace, out: Path, epochs: int) -> dict:
    """Train one run of the comparison at the shared budget; its metrics.json plus its folder."""
    if args.quick:  # smoke size: a couple of hundred extra faces, not 20,000
        overrides = [o.replace("=20000", "=200") if o.startswith("data.extra_train_faces=") else o for o in overrides]
    sizes = [f"model.{key}={value}" for key in ("hidden", "latent") if (value := getattr(args, key)) is not None]
    budget = [
        *sizes, f"data.image_size={args.size}",
        f"data.num_images={args.images}", f"seed={args.seed}",
        f"trainer.max_steps={args.steps}" if args.steps else f"trainer.max_epochs={epochs}",
        "trainer.accelerator=cpu" if args.cpu else "trainer.accelerator=auto",
        "log.progress=none", "log.images_every_n_epochs=0", f"data.cache_dir={args.cache_dir}",
    ]
    if args.quick:  # a small judge: its metrics are real, its accuracy modest
        budget += ["eval.judge.num_train=300", "eval.judge.num_holdout=100", "eval.judge.epochs=2", "eval.iwae_k=4"]
    cfg = common.composed("train", *overrides, *budget)
    metrics = train_and_evaluate(cfg, out / name)
    return {**metrics, "run_dir": str(out / name)}


def arch_runs(arch: str) -> dict[str, list[str]]:
    """The --arch runs: the sharp recipe with model=arch, at equal epochs and at equal wall time."""
    overrides = ["experiment=sharp", f"model={arch}", "sample.prior=gmm"]
    return {arch: overrides, f"{arch}-time": overrides}


def arch_rows(arch: str) -> list[tuple[str, str, str]]:
    return [(f"{arch} · sharp + gmm, equal epochs", arch, "gmm"),
            (f"{arch} · sharp + gmm, equal time", f"{arch}-time", "gmm")]


def equal_time_epochs(epochs: int, reference_seconds: float, arch_seconds: float) -> int:
    """Epochs of the arch run that take the reference run's trainer.fit time (at least one)."""
    return max(1, round(epochs * reference_seconds / arch_seconds))


def _per_prior(m: dict, key: str, prior: str):
    value = m.get(key)
    return value.get(prior) if isinstance(value, dict) else None


def row_values(m: dict, prior: str) -> dict:
    """The table's cells of one run read with one prior (None where a metric does not apply)."""
    recon, ceiling = m.get("attr_acc_recon") or {}, m.get("judge_ceiling") or {}
    return {
        "bits/dim": m.get("bits_per_dim"), "PSNR dB": m.get("psnr"), "SSIM": m.get("ssim"),
        "active units": m.get("active_units"),
        "attr acc recon (ceiling)": (recon.get("mean"), ceiling.get("mean")),
        "mouth": recon.get("mouth"),
        "fd_judge N(0,I)": _per_prior(m, "fd_judge", "normal"), "fd_judge gmm": _per_prior(m, "fd_judge", "gmm"),
        "precision": _per_prior(m, "precision", prior), "recall": _per_prior(m, "recall", prior),
        "epochs": m.get("epochs"), "fit seconds": m.get("fit_seconds"), "seconds": m.get("seconds"),
    }


FORMATS = {"bits/dim": ".4f", "PSNR dB": ".2f", "SSIM": ".3f", "mouth": ".0%", "fd_judge N(0,I)": ".0f",
           "fd_judge gmm": ".0f", "precision": ".2f", "recall": ".2f", "fit seconds": ".0f",
           "seconds": ".0f"}


def _cell(column: str, value) -> str:
    if isinstance(value, tuple):
        return "—" if value[0] is None else f"{value[0]:.0%} ({value[1]:.0%})"
    if value is None:
        return "—"
    return format(value, FORMATS.get(column, "")) if not isinstance(value, int) or column in FORMATS else str(value)


def table(rows: list[tuple[str, dict]]) -> str:
    """The comparison as a markdown table."""
    lines = ["| row | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(_cell(c, values[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def picture_row(run_dir: str, prior_name: str, seed: int, n: int = 8) -> Image.Image:
    """8 test faces above their reconstructions, beside 16 samples (two rows of 8) from the prior."""

    vae, config, prior = load_model(run_dir)
    faces = LegoFacesDataModule.ready(config.data).split_images("test")[:n]
    recon = (vae.reconstruct(faces.float() / 255) * 255).round().to(torch.uint8)
    samples = decoded_samples(vae, 2 * n, prior if prior_name == "gmm" else None, seed=seed)
    size, pad = faces.shape[-1], 2
    tile = size + pad
    canvas = Image.new("RGB", (2 * n * tile + 3 * tile // 2, 2 * tile), "white")
    blocks = [(0, faces), (0, recon), (n * tile + tile // 2, samples[:n]), (n * tile + tile // 2, samples[n:])]
    for i, (x0, images) in enumerate(blocks):
        for j, image in enumerate(images):
            canvas.paste(to_pil(image.float() / 255), (x0 + j * tile, (i % 2) * tile))
    return canvas


def write_picture(rows: list[tuple[str, str, str]], runs: dict[str, dict], path: Path, seed: int) -> Path:
    """docs/compare.png: one labelled strip per row."""
    strips = [(label, picture_row(runs[run]["run_dir"], prior, seed)) for label, run, prior in rows]
    label_h = 18
    width = max(s.width for _, s in strips)
    sheet = Image.new("RGB", (width, sum(s.height + label_h + 6 for _, s in strips)), "white")
    draw, y = ImageDraw.Draw(sheet), 0
    for label, strip in strips:
        draw.text((2, y + 3), f"{label}  (left: test faces / reconstructions; right: samples)", fill="black")
        sheet.paste(strip, (0, y + label_h))
        y += strip.height + label_h + 6
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-sized: 16 px, 256 faces, 2 epochs")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--images", type=int, default=2600)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=None, help="one hidden size for every run (default: each run's own)")
    parser.add_argument("--latent", type=int, default=None, help="one latent size for every run (default: each run's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None,
                        help="train every run exactly this many optimizer steps instead of --epochs (equal steps)")
    parser.add_argument("--runs", default=None, help="which of the base runs to train (comma-separated; default: "
                        "all, sharp-20k only with --steps)")
    parser.add_argument("--arch", choices=ARCHES, help="add this model= with the sharp recipe, equal epochs and time")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is")
    parser.add_argument("--cache-dir", default=".cache/lego_vae")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--picture", default=str(ROOT / "docs" / "compare.png"))
    parser.add_argument("--name", default="compare", help="the result is written to OUT/NAME.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.images, args.size = 2, 256, 16
        args.hidden = 64 if args.hidden is None else args.hidden  # the latent stays each run's own (no cost)
    if args.quick and args.steps:
        args.steps = min(args.steps, 16)
    runs_arg = args.runs or ",".join(RUNS if args.steps else BASE_RUNS)
    chosen = [name.strip() for name in runs_arg.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in RUNS]
    if unknown or not chosen:
        parser.error(f"--runs: choose from {', '.join(RUNS)} (got {args.runs!r})")
    if "sharp-20k" in chosen and not args.steps:
        parser.error("--runs sharp-20k: compare more faces at equal steps; pass --steps (e.g. 990 = 30 epochs of 2,600)")
    if args.arch and "sharp" not in chosen:
        parser.error("--arch compares against the sharp run: include sharp in --runs")
    rows = [row for row in ROWS if row[1] in chosen] + (arch_rows(args.arch) if args.arch else [])
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: train_run(name, RUNS[name], args, Path(tmp), args.epochs) for name in chosen}
        if args.arch:
            (same, timed), overrides = arch_runs(args.arch), arch_runs(args.arch)[args.arch]
            runs[same] = train_run(same, overrides, args, Path(tmp), args.epochs)
            epochs = equal_time_epochs(args.epochs, runs["sharp"]["fit_seconds"], runs[same]["fit_seconds"])
            runs[timed] = train_run(timed, overrides, args, Path(tmp), epochs)
        picture = write_picture(rows, runs, Path(args.picture), args.seed)
        for run in runs.values():
            run.pop("run_dir")
    values = [(label, row_values(runs[run], prior)) for label, run, prior in rows]
    settings = {k: getattr(args, k) for k in ("epochs", "steps", "images", "size", "hidden", "latent", "seed", "arch")}
    machine = {"cpu": platform.processor() or platform.machine(), "cores": torch.get_num_threads(),
               "torch": torch.__version__, "device": "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"}
    print(f"budget: {settings}; machine: {machine}")
    print(table(values))
    print(f"wrote {picture}")
    result = {"name": args.name, "machine": machine, "settings": settings, "runs": runs,
              "rows": [{"row": label, "run": run, "prior": prior} for label, run, prior in rows]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{args.name}.json", result)
    return result


if __name__ == "__main__":
    main()
