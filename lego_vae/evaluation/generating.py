"""generate(cfg, out_dir): samples, face morphs, latent traversals and reconstructions from a checkpoint
(and classes.png: test faces of chosen classes above their reconstructions)."""

from __future__ import annotations

from pathlib import Path

import torch

from lego_vae.config import validated
from lego_vae.config.commands import GenerateConfig
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.data.folder import load_folder
from lego_vae.data.images import load_image
from lego_vae.data.labelled import factors_of
from lego_vae.errors import UserError
from lego_vae.model.checkpoints import chosen_prior
from lego_vae.model.inference import device_for, kl_per_dim
from lego_vae.model.prior import sample_latents
from lego_vae.model.vae import VAE
from lego_vae.pictures import save_gif, save_grid
from lego_vae.runs import load_model


def to_float(images: torch.Tensor, vae: VAE) -> torch.Tensor:
    """uint8 images -> floats in [0, 1] on the VAE's device."""
    return images.to(next(vae.parameters()).device).float() / 255


@torch.no_grad()
def morph_rows(vae: VAE, pairs: list[tuple[torch.Tensor, torch.Tensor]], steps: int, mode: str) -> torch.Tensor:
    """(rows, steps, 3, S, S): faces between the posterior means of each pair of faces (3, S, S) in [0, 1]."""
    return torch.stack([vae.interpolate(a, b, steps, mode) for a, b in pairs])


@torch.no_grad()
def traversal(vae: VAE, test: torch.Tensor, dims: int, steps: int, span: float) -> torch.Tensor:
    """(dims, steps, 3, S, S): one row for each of the dims most used latent dimensions (by mean KL over the test
    faces, uint8 (N, 3, S, S)), set from -span to +span around the first test face's mean."""
    ranked = kl_per_dim(vae, test).argsort(descending=True).tolist()[:dims]
    mu = vae.encode(to_float(test[:1], vae))[0][0]
    values = torch.linspace(-span, span, steps, device=mu.device)
    rows = []
    for d in ranked:
        z = mu.repeat(steps, 1)
        z[:, d] = values
        rows.append(vae.decode(z))
    return torch.stack(rows)


def random_pairs(datamodule: LegoFacesDataModule, n: int, gen: torch.Generator,
                 vae: VAE) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Up to n pairs of distinct held-out faces (3, S, S) in [0, 1], drawn without replacement with gen.

    Test faces, joined by the validation faces where the test split has only one (held_out). Fewer pairs than
    asked, or validation faces, are said in one printed line.
    """
    faces, _ = datamodule.held_out("test", at_least=2)
    picked = to_float(faces[torch.randperm(len(faces), generator=gen)[: 2 * n].tolist()], vae)
    pairs = [(picked[i], picked[i + 1]) for i in range(0, len(picked) - 1, 2)]
    n_test = len(datamodule.split_indices["test"])
    notes = []
    if n_val := len(faces) - n_test:
        notes.append(f"the test split has {n_test} face{'s' if n_test != 1 else ''}, so the "
                     f"{n_val} validation face{'s are' if n_val != 1 else ' is'} drawn from too")
    if len(pairs) < n:
        notes.append(f"{len(pairs)} pair{'s' if len(pairs) != 1 else ''} of {len(faces)} faces, not pairs={n}")
    if notes:
        print(f"morph: {'; '.join(notes)}", flush=True)
    return pairs


def check_classes(factor: str, values: list[str], source: str = "synthetic") -> list[str]:
    """The classes of a factor of a rendered source's labels to show (all of them for []); UserError for a source
    without labels (photos), an unknown factor or class."""
    FACTORS = factors_of(source)
    if FACTORS is None:
        raise UserError(f"classes.factor: needs a rendered source (synthetic or ldraw), whose faces carry their "
                        f"classes; this run's is {source}")
    if factor not in FACTORS or factor == "extras":
        choices = ", ".join(f for f in FACTORS if f != "extras")
        raise UserError(f"classes.factor={factor}: not a factor with one class per face ({choices})")
    if unknown := [v for v in values if v not in FACTORS[factor]]:
        raise UserError(f"classes.values: {', '.join(unknown)} not a class of {factor} "
                        f"(its classes: {', '.join(FACTORS[factor])})")
    return values or list(FACTORS[factor])


def class_strip(vae: VAE, datamodule: LegoFacesDataModule, factor: str, values: list[str],
                per_class: int) -> tuple[torch.Tensor, list[str]]:
    """The first per_class test faces of each class of a factor, in the test split's order, above their
    reconstructions: (2 * K, 3, S, S) in [0, 1] (a grid of nrow=K) and the class of each of the K columns.

    Raises UserError as check_classes does, or when no test face has any of the classes.
    """
    values = check_classes(factor, values, datamodule.source)
    labels = datamodule.split_labels("test")
    if labels is None:
        raise UserError("classes.factor: needs a rendered source (synthetic or ldraw), whose faces carry their classes")
    picked = [(i, v) for v in values for i in [i for i, lab in enumerate(labels) if lab[factor] == v][:per_class]]
    if not picked:
        raise UserError(f"classes: no test face of {factor} {', '.join(values)}")
    if missing := [v for v in values if v not in {c for _, c in picked}]:
        print(f"classes: no test face of {factor} {', '.join(missing)}", flush=True)
    faces = to_float(datamodule.split_images("test")[[i for i, _ in picked]], vae)
    return torch.cat([faces, vae.reconstruct(faces)]), [c for _, c in picked]


def generate(cfg, out_dir: str | Path) -> list[Path]:
    """Write samples.png, morph.png/.gif, traversal.png (and reconstructions.png for inputs) into out_dir."""
    plain = validated(cfg, GenerateConfig)  # conf/generate.yaml, checked
    out_dir = Path(out_dir)
    device = device_for()
    vae, config, fitted = load_model(plain.checkpoint, device)
    if plain.classes.factor is not None:  # a wrong name is refused before any picture is written
        check_classes(plain.classes.factor, plain.classes.values, config.data.source)
    prior = chosen_prior(plain.prior, fitted, plain.checkpoint)
    size, steps, gen = config.data.image_size, plain.steps, torch.Generator().manual_seed(plain.seed)
    max_pixels = config.data.max_pixels  # the run's (today's default for a checkpoint older than the key)
    z = sample_latents(vae.latent, plain.n ** 2, prior, plain.temperature, generator=gen)
    written = [save_grid(vae.decode(z.to(device)), out_dir / "samples.png", nrow=plain.n)]

    datamodule = LegoFacesDataModule.ready(config.data)
    if plain.a is not None:
        a, b = (to_float(torch.from_numpy(load_image(path, size, max_pixels)).permute(2, 0, 1), vae)
                for path in (plain.a, plain.b))
        pairs = [(a, b)]
    else:
        pairs = random_pairs(datamodule, plain.pairs, gen, vae)
    morph = morph_rows(vae, pairs, steps, plain.morph.mode)  # (rows, steps, 3, S, S)
    written.append(save_grid(morph.flatten(0, 1), out_dir / "morph.png", nrow=steps))
    # One GIF frame per step, the rows of all pairs stacked: every morph plays at once.
    frames = torch.stack([torch.cat(list(morph[:, t]), dim=1) for t in range(steps)])
    written.append(save_gif(frames, out_dir / "morph.gif", scale=max(1, 128 // size)))

    t = plain.traversal
    rows = traversal(vae, datamodule.split_images("test"), t.dims, t.steps, t.range)
    written.append(save_grid(rows.flatten(0, 1), out_dir / "traversal.png", nrow=t.steps))

    if plain.classes.factor is not None:
        c = plain.classes
        strip, shown = class_strip(vae, datamodule, c.factor, c.values, c.per_class)
        # Upscaled (nearest) to at least 128 px a face, so a small feature can be named by eye.
        strip = torch.nn.functional.interpolate(strip, scale_factor=max(1, 128 // size), mode="nearest")
        written.append(save_grid(strip, out_dir / "classes.png", nrow=len(shown)))
        print(f"classes.png: test faces above their reconstructions, {c.factor}: {', '.join(shown)}", flush=True)

    if plain.inputs:
        pixels, _ = load_folder(plain.inputs, size, max_pixels=max_pixels)
        inputs = to_float(torch.from_numpy(pixels).permute(0, 3, 1, 2), vae)
        recon = torch.cat([vae.reconstruct(chunk) for chunk in inputs.split(256)])
        per_row = min(len(inputs), plain.n)
        grid = torch.cat([torch.cat([inputs[i : i + per_row], recon[i : i + per_row]]) for i in range(0, len(inputs), per_row)])
        written.append(save_grid(grid, out_dir / "reconstructions.png", nrow=per_row))
    for path in written:
        print(f"wrote {path}")
    return written
