"""Training steps per second on the CPU: the default precision and memory format against fp32, contiguous.

    python -m bench.cpu_speed [--quick] [--out DIR] [--repeats 5] [--steps 5] [--size 64] [--threads N]

One optimizer step of the conv VAE as `LitVAE` takes it (forward, the seed's loss, backward, Adam), on a
fixed batch of 64 rendered faces, hidden 512, latent 32: the recipe the quality runs use. Five settings,
timed interleaved in one process (`common.interleaved`), each the median over repeats of `steps` steps:
- fp32, contiguous: what the CPU got before (precision auto meant 32-true there; no channels-last);
- fp32, channels-last;
- bf16 autocast, contiguous;
- `trainer.precision=auto` resolved for this CPU (bf16-mixed where it computes bf16 natively, else
  32-true) and `model.channels_last=true`, exactly as a Trainer would set them up, with torch's default
  Adam (a loop over the parameter tensors on the CPU);
- the default now: the same with `optim.fused=true` (Adam's update as one fused kernel).
The ratio fp32 / default is the speed-up a user gets. On a CPU without native bf16 the default is fp32
and the ratio is that of channels-last alone.

Target: the default trains >= 3x the steps per second of fp32, contiguous (where the CPU has bf16).
"""

from __future__ import annotations

import contextlib

import torch

from bench import common
from lego_vae.model.build import make_vae
from lego_vae.model.losses import vae_loss
from lego_vae.training.trainer import cpu_has_bf16, resolve_precision

NAME = "cpu_speed"
TARGET = 3.0


def step_fn(size: int, hidden: int, latent: int, bf16: bool, channels_last: bool, steps: int, fused: bool = False):
    """A callable running `steps` training steps of a fresh VAE in one setting (the seconds are timed outside)."""
    torch.manual_seed(0)
    vae = make_vae(size, arch="conv", likelihood="fixed", hidden=hidden, latent=latent, channels=32, max_channels=256,
                   stage_convs=0, norm="batch", feature_size=4)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    vae = vae.to(memory_format=fmt)
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3, fused=fused or None)
    x = torch.rand(64, 3, size, size).contiguous(memory_format=fmt)

    def run() -> None:
        for _ in range(steps):
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with ctx:
                x_hat, mu, logvar = vae(x)
                loss = vae_loss(x_hat.float(), x, mu.float(), logvar.float())["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    run()  # warm-up: allocator, oneDNN primitive caches
    return run


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--size", type=int, default=64)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.steps, args.size = 2, 1, 16
    hidden, latent = (64, 8) if args.quick else (512, 32)
    default_bf16 = resolve_precision("auto", "cpu") == "bf16-mixed"
    settings = {"fp32, contiguous": (False, False, False), "fp32, channels-last": (False, True, False),
                "bf16, contiguous": (True, False, False),
                "auto, channels-last, torch's default Adam": (default_bf16, True, False),
                "default (auto, channels-last, fused Adam)": (default_bf16, True, True)}
    with common.limit_threads(common.threads_of(args)):
        runs = {name: step_fn(args.size, hidden, latent, bf16, cl, args.steps, fused)
                for name, (bf16, cl, fused) in settings.items()}
        times = common.interleaved(runs, args.repeats)
    ms = {name: 1000 * common.median(t) / args.steps for name, t in times.items()}
    base = ms["fp32, contiguous"]
    results = [{"setting": name, "ms_per_step": v, "speed_vs_fp32": base / v} for name, v in ms.items()]
    speedup = base / ms["default (auto, channels-last, fused Adam)"]
    targets = [common.target("default steps/s over fp32 contiguous" + ("" if cpu_has_bf16() else " (no bf16 here)"),
                             f">= {TARGET:g}x", speedup, speedup >= TARGET if cpu_has_bf16() else None)]
    return common.report(NAME, {**vars(args), "out": str(args.out), "bf16_native": cpu_has_bf16(),
                                "default_precision": resolve_precision("auto", "cpu")}, results, targets, args.out)


if __name__ == "__main__":
    main()
