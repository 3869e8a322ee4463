"""The sim-to-real check: how well runs reconstruct real photos of Lego heads, per image, side by side.

    python -m bench.sim_to_real RUN [RUN ...] --real FOLDER [--out DIR] [--columns 16]

Why: a run trained on rendered faces (data=synthetic, or the LDraw heads) is meant for real heads. Here every
image under FOLDER is read as `data=folder` training reads it (lego_vae.data.folder.load_folder: the same
resizing to the run's image size, hidden and tool folders skipped, byte-identical copies once, unreadable
images skipped with one warning line), and each run reconstructs it from its posterior mean (decode(mu), as
the evaluation's reconstructions). Several runs read the same heads: "trained on synthetic faces vs trained
on LDraw heads" on one photo set.

Per image and run, at the run's image size, pixels in [0, 1] (torchmetrics.functional, data_range=1.0):
- PSNR in dB = 10 log10(1 / MSE), the MSE over the image's 3 S^2 values (torchmetrics
  peak_signal_noise_ratio); an exact reconstruction (inf) is reported as PSNR_CAP_DB, as metrics.json does;
- SSIM (Wang, Bovik, Sheikh and Simoncelli 2004, "Image quality assessment: from error visibility to
  structural similarity"; torchmetrics structural_similarity_index_measure, its Gaussian window of 11 px,
  or of the largest odd size below S for smaller images, as metrics.json's ssim).
The mean of each is over the images. A run's metrics.json pools the MSE of its test split before the log;
the mean PSNR here is the mean of per-image PSNRs, so the two differ a little even on the same images.

Writes <out>/sim_to_real.json: the folder, the image size and, keyed by run (its checkpoint), the data
source it was trained on, per image name {psnr, ssim} and the mean; <out>/sim_to_real.png: the real heads
in the top row and each run's reconstructions in a row below, in blocks of --columns heads. Prints a table.

RUN is a run folder, a .ckpt or a study folder (as evaluate's checkpoint=). The runs must share one image
size. A run that cannot be loaded, runs of different sizes, a missing or empty FOLDER, or one without a
readable image are one `error:` line, exit status 2.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from bench import common
from lego_vae.cli import run_app
from lego_vae.data.folder import load_folder
from lego_vae.errors import UserError
from lego_vae.evaluation.metrics import PSNR_CAP_DB
from lego_vae.model.checkpoints import checkpoint_file
from lego_vae.model.inference import evaluating, float_batches
from lego_vae.model.vae import VAE
from lego_vae.pictures import save_grid
from lego_vae.runs import load_model

NAME = "sim_to_real"


def reconstruct(vae: VAE, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Decoded posterior means of uint8 images (N, 3, S, S): float (N, 3, S, S) in [0, 1] on the CPU."""
    with evaluating(vae) as device:
        return torch.cat([vae.reconstruct(x).float().cpu() for x in float_batches(images, batch_size, device)])


def image_scores(recon: torch.Tensor, real: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-image PSNR (dB, capped at PSNR_CAP_DB) and SSIM of float images (N, 3, S, S) in [0, 1] (module docstring)."""
    size = real.shape[-1]
    kernel = min(11, size if size % 2 else size - 1)  # the window must fit the image, as in metrics.json
    psnr = peak_signal_noise_ratio(recon, real, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(recon, real, data_range=1.0, kernel_size=kernel, reduction="none")
    return psnr.clamp(max=PSNR_CAP_DB).tolist(), ssim.reshape(len(real)).tolist()


def read_real(folder: str, size: int, max_pixels: int) -> tuple[torch.Tensor, list[str]]:
    """Every image under folder as data=folder reads it: uint8 (N, 3, size, size) and the relative names.

    load_folder's warnings (skipped, unreadable, copied files) are one `warning:` line each on stderr.
    Raises UserError (load_folder's line, naming --real) for a missing folder, a file, or no readable image."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pixels, names = load_folder(folder, size, max_pixels=max_pixels)
    except UserError as err:
        raise UserError(str(err).replace("data.root:", "--real:", 1)) from None
    for warning in caught:  # a skipped file, a dropped copy: one line each, as data=folder training shows them
        print(f"warning: {warning.message}", file=sys.stderr, flush=True)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), names


def load_runs(runs: list[str]) -> tuple[dict[str, tuple[VAE, dict]], int]:
    """Each run's VAE and config, keyed by its checkpoint (a run given twice is read once), and their image size.

    Raises UserError for a run that cannot be loaded, or runs of different image sizes."""
    models: dict[str, tuple[VAE, dict]] = {}
    for run in runs:
        key = str(checkpoint_file(run))
        if key not in models:
            vae, config, _ = load_model(run)
            models[key] = (vae, config)
    sizes = {config.data.image_size for _, config in models.values()}
    if len(sizes) != 1:
        raise UserError(f"the runs are of different image sizes {sorted(sizes)}: compare runs of one size")
    return models, sizes.pop()


def sim_to_real(runs: list[str], folder: str, out: Path, columns: int) -> dict:
    """Read the real heads, score each run's reconstructions, write the picture; the results (module docstring)."""
    models, size = load_runs(runs)
    max_pixels = next(iter(models.values()))[1].data.max_pixels  # today's default for runs older than the key
    images, names = read_real(folder, size, max_pixels)
    real = images.float() / 255
    results, recons = {}, []
    for key, (vae, config) in models.items():
        recon = reconstruct(vae, images)
        recons.append(recon)
        psnr, ssim = image_scores(recon, real)
        results[key] = {
            "data": config.data.source,
            "images": {name: {"psnr": p, "ssim": s} for name, p, s in zip(names, psnr, ssim)},
            "mean": {"psnr": sum(psnr) / len(psnr), "ssim": sum(ssim) / len(ssim)},
        }
    # Blocks of `columns` heads: the real ones, then each run's reconstructions of them.
    per_row = min(columns, len(names))
    blocks = [torch.cat([real[i : i + per_row], *(r[i : i + per_row] for r in recons)])
              for i in range(0, len(names), per_row)]
    if len(names) % per_row:  # the last block padded with white, so every row has per_row cells
        missing = per_row - len(names) % per_row
        last = blocks[-1].view(1 + len(recons), -1, *real.shape[1:])
        pad = torch.ones(1 + len(recons), missing, *real.shape[1:])
        blocks[-1] = torch.cat([last, pad], dim=1).flatten(0, 1)
    picture = save_grid(torch.cat(blocks), out / f"{NAME}.png", nrow=per_row)
    return {"folder": str(folder), "image_size": size, "images": len(names), "runs": results,
            "picture": str(picture)}


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders, .ckpt files or study folders (one image size)")
    p.add_argument("--real", required=True, help="folder of real photos of heads (read as data=folder reads it)")
    p.add_argument("--columns", type=int, default=16, help="heads per row of the picture (default 16)")
    args = p.parse_args(argv)
    if args.columns < 1:
        p.error("--columns must be at least 1")
    out = Path(args.out)
    with common.limit_threads(common.threads_of(args)):
        result = run_app(sim_to_real, args.runs, args.real, out, args.columns)
    settings = {"real": result["folder"], "image_size": result["image_size"], "images": result["images"]}
    rows = [{"run": key, "data": r["data"], "mean psnr dB": round(r["mean"]["psnr"], 2),
             "mean ssim": round(r["mean"]["ssim"], 4)} for key, r in result["runs"].items()]
    info = common.report(NAME, settings, rows, [], out=out,
                         extra={k: result[k] for k in ("folder", "image_size", "runs")})
    labels = list(result["runs"])
    per_image = [{"image": name, **{f"psnr {i + 1}": round(result["runs"][k]["images"][name]["psnr"], 2)
                                    for i, k in enumerate(labels)},
                  **{f"ssim {i + 1}": round(result["runs"][k]["images"][name]["ssim"], 4) for i, k in enumerate(labels)}}
                 for name in next(iter(result["runs"].values()))["images"]]
    print("per image (run numbers as in the rows above):\n")
    print(common.markdown(per_image, list(per_image[0])) + "\n")
    print(f"{result['picture']}: real heads in the top row, then each run's reconstructions in that order")
    return info


if __name__ == "__main__":
    main()
