"""generate(cfg, out_dir): samples, face morphs, latent traversals and reconstructions from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from lego_vae.config import validated
from lego_vae.config.commands import GenerateConfig
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.data.folder import load_folder
from lego_vae.data.images import load_image
from lego_vae.evaluation.metrics import kl_per_dim
from lego_vae.evaluation.pictures import save_gif, save_grid, traversal
from lego_vae.model.checkpoints import chosen_prior, load_model
from lego_vae.model.prior import sample_latents
from lego_vae.model.vae import VAE, interpolate_latents


def to_float(images: torch.Tensor, vae: VAE) -> torch.Tensor:
    """uint8 images -> floats in [0, 1] on the VAE's device."""
    return images.to(next(vae.parameters()).device).float() / 255


@torch.no_grad()
def morph_rows(vae: VAE, pairs: list[tuple[torch.Tensor, torch.Tensor]], steps: int, mode: str) -> torch.Tensor:
    """(rows, steps, 3, S, S): faces between the posterior means of each pair of images (3, S, S) in [0, 1].

    Raises ValueError for no pairs (a morph needs at least one).
    """
    if not pairs:
        raise ValueError("morph_rows: no pairs to morph")
    rows = []
    for a, b in pairs:
        mu = vae.encode(torch.stack([a, b]))[0]  # (2, latent)
        rows.append(vae.decode(interpolate_latents(mu[0], mu[1], steps, mode)))
    return torch.stack(rows)


def random_pairs(datamodule: LegoFacesDataModule, n: int, gen: torch.Generator,
                 vae: VAE) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Up to n pairs of distinct held-out faces (3, S, S) in [0, 1], drawn without replacement with gen.

    Test faces; where the test split has only one, the validation faces join it (held_out), so there is
    always at least one pair. Fewer pairs than asked, or validation faces, are said in one printed line.
    """
    faces, labels = datamodule.held_out("test", at_least=2)
    idx = torch.randperm(len(faces), generator=gen)[: 2 * n].tolist()
    picked = to_float(faces[idx], vae)
    pairs = [(picked[i], picked[i + 1]) for i in range(0, len(picked) - 1, 2)]
    n_test = len(datamodule.split_indices["test"])
    notes = []
    if len(faces) > n_test:
        n_val = len(faces) - n_test
        notes.append(f"the test split has {n_test} face{'s' if n_test != 1 else ''}, so the "
                     f"{n_val} validation face{'s are' if n_val != 1 else ' is'} drawn from too")
    if len(pairs) < n:
        notes.append(f"{len(pairs)} pair{'s' if len(pairs) != 1 else ''} of {len(faces)} faces, not pairs={n}")
    if notes:
        print(f"morph: {'; '.join(notes)}", flush=True)
    return pairs


def validate_generate(cfg) -> dict:
    """Check a generate config (conf/generate.yaml); return it as plain data."""
    return validated(cfg, GenerateConfig)


def generate(cfg, out_dir: str | Path) -> list[Path]:
    """Write samples.png, morph.png/.gif, traversal.png (and reconstructions.png for inputs) into out_dir."""
    plain = validate_generate(cfg)
    out_dir = Path(out_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    vae, config, fitted = load_model(plain["checkpoint"], device)
    prior = chosen_prior(plain["prior"], fitted, plain["checkpoint"])
    size, steps, gen = config["data"]["image_size"], plain["steps"], torch.Generator().manual_seed(plain["seed"])
    z = sample_latents(vae.latent, plain["n"] ** 2, prior, plain["temperature"], generator=gen)
    written = [save_grid(vae.decode(z.to(device)), out_dir / "samples.png", nrow=plain["n"])]

    datamodule = LegoFacesDataModule.ready(config["data"])
    test = datamodule.split_images("test")
    if plain.get("a") is not None:
        a, b = (to_float(torch.from_numpy(load_image(plain[k], size)).permute(2, 0, 1), vae) for k in ("a", "b"))
        pairs = [(a, b)]
    else:
        pairs = random_pairs(datamodule, plain["pairs"], gen, vae)
    morph = morph_rows(vae, pairs, steps, plain["morph"]["mode"])  # (rows, steps, 3, S, S)
    written.append(save_grid(morph.flatten(0, 1), out_dir / "morph.png", nrow=steps))
    # One GIF frame per step, the rows of all pairs stacked: every morph plays at once.
    frames = torch.stack([torch.cat(list(morph[:, t]), dim=1) for t in range(steps)])
    written.append(save_gif(frames, out_dir / "morph.gif", scale=max(1, 128 // size)))

    faces = to_float(test, vae)
    ranked = kl_per_dim(vae, test).argsort(descending=True).tolist()[: plain["traversal"]["dims"]]
    rows = traversal(vae, faces[0], ranked, plain["traversal"]["steps"], plain["traversal"]["range"])
    written.append(save_grid(rows.flatten(0, 1), out_dir / "traversal.png", nrow=plain["traversal"]["steps"]))

    if plain.get("inputs"):
        pixels, _ = load_folder(plain["inputs"], size)
        inputs = to_float(torch.from_numpy(pixels).permute(0, 3, 1, 2), vae)
        recon = torch.cat([vae.reconstruct(chunk) for chunk in inputs.split(256)])
        per_row = min(len(inputs), plain["n"])
        grid = torch.cat([torch.cat([inputs[i : i + per_row], recon[i : i + per_row]]) for i in range(0, len(inputs), per_row)])
        written.append(save_grid(grid, out_dir / "reconstructions.png", nrow=per_row))
    for path in written:
        print(f"wrote {path}")
    return written
