"""The typed schema of train.yaml (common.yaml and its groups): one dataclass per section.

Each field has a type (OmegaConf's check) and its range (lego_vae.config.fields); defaults live once,
commented, in lego_vae/conf. Checks that tie fields together are each class's `check(root)` (root: the whole
typed config).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lego_vae.config.choices import ARCHS, LIKELIHOODS, PRIORS
from lego_vae.config.fields import anything, choice, flag, integer, integers, number, path, text
from lego_vae.data.images import PILLOW_MAX_PIXELS
from lego_vae.errors import UserError
from lego_vae.model.build import refusal


@dataclass(kw_only=True)
class DataConfig:
    source: str = choice(("synthetic", "ldraw", "folder", "lego_faces"))
    root: str | None = path(optional=True)
    image_size: int = integer(8, 1024)
    num_images: int | None = integer(3, optional=True)
    batch_size: int = integer(1)
    val_fraction: float = number(0, 1, low_open=True, high_open=True)
    test_fraction: float = number(0, 1, low_open=True, high_open=True)
    seed: int = integer(0)
    cache_dir: str = path(nonempty=True)
    url: str | None = text(optional=True)
    blob: str | None = text(optional=True)
    extra_train_faces: int = integer(0)
    max_pixels: int = integer(1, PILLOW_MAX_PIXELS)

    def check(self, root: Any, prefix: str = "data") -> None:
        if self.source == "folder" and not self.root:
            raise UserError(f"{prefix}.root: the folder source needs a path (data.root=/path/to/images)")
        if self.extra_train_faces and self.source not in ("synthetic", "ldraw"):
            raise UserError(f"{prefix}.extra_train_faces={self.extra_train_faces}: only the synthetic and ldraw "
                            "sources render more faces (use 0)")
        if self.val_fraction + self.test_fraction >= 1:
            total = self.val_fraction + self.test_fraction
            raise UserError(f"{prefix}.val_fraction + {prefix}.test_fraction = {total:g}: must be < 1")


@dataclass(kw_only=True)
class ModelConfig:
    arch: str = choice(ARCHS)
    hidden: int = integer(1)
    latent: int = integer(1)
    beta: float = number(0)
    likelihood: str = choice(LIKELIHOODS)
    log_sigma_min: float = number(note="log of the smallest decoder sigma")
    sigma_momentum: float = number(0, 1, low_open=True)
    channels: int = integer(1)
    max_channels: int = integer(1)
    blocks: int = integer(0)
    stage_convs: int = integer(0)
    norm: str = choice(("batch", "group"))  # the conv net's normalisation
    feature_size: int = integer(1)
    compile: bool = flag()
    # torch.compile's: reduce-overhead captures CUDA graphs (one launch for a step's kernels, on a GPU)
    compile_mode: str = choice(("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"))
    channels_last: bool = flag()

    def check(self, root: TrainConfig) -> None:
        if problem := refusal(self, root.data.image_size):  # what the architecture cannot build
            raise UserError(problem)


@dataclass(kw_only=True)
class OptimConfig:
    lr: float = number(0, low_open=True)
    final_lr: float = number(0, low_open=True)
    schedule: str = choice(("exponential", "cosine"))
    fused: bool = flag()
    beta1: float = number(0, 1, high_open=True)
    beta2: float = number(0, 1, high_open=True)

    def check(self, root: Any) -> None:
        if self.final_lr > self.lr:
            raise UserError(f"optim.final_lr={self.final_lr:g}: must be <= optim.lr={self.lr:g} "
                            "(the schedule decays)")


@dataclass(kw_only=True)
class TrainerConfig:
    max_epochs: int = integer(1)
    max_steps: int | None = integer(1, optional=True)
    gradient_clip_val: float | None = number(0, low_open=True, optional=True)
    gradient_clip_algorithm: str = choice(("value", "norm"))
    accelerator: str = choice(("auto", "cpu", "gpu", "cuda", "mps"))  # plain torch's: no tpu, hpu
    devices: Any = anything("auto or a number of devices")
    precision: Any = choice(("auto", "32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true",
                             "64-true"), as_text=True)
    benchmark: bool = flag()
    strategy: str = text(nonempty=True)
    num_nodes: int = integer(1)
    log_every_n_steps: int = integer(1)
    threads: int | None = integer(1, optional=True)


@dataclass(kw_only=True)
class LogConfig:
    images_every_n_epochs: int = integer(0)
    progress: str = choice(("auto", "rich", "plain", "none"))


@dataclass(kw_only=True)
class JudgeConfig:
    enabled: bool = flag()
    seed: int = integer(0)
    num_train: int = integer(1)
    num_holdout: int = integer(1)
    epochs: int = integer(1)
    batch_size: int = integer(1)
    lr: float = number(0, low_open=True)
    width: int = integer(1)
    num_features: int = integer(1)
    k: int = integer(1)

    def check(self, root: TrainConfig) -> None:
        if root.data.source in ("synthetic", "ldraw") and self.seed == root.data.seed:
            raise UserError(f"eval.judge.seed={self.seed}: must differ from data.seed, or the judge trains on "
                            "the VAE's faces")


@dataclass(kw_only=True)
class EvalConfig:
    iwae_k: int = integer(1)
    inception_weights: str | None = path(optional=True)
    judge: JudgeConfig


@dataclass(kw_only=True)
class SampleConfig:
    prior: str = choice(PRIORS)
    gmm_components: list[int] = integers(1)
    reg_covar: float = number(0, low_open=True)


@dataclass(kw_only=True)
class PicturesConfig:
    grid: int = integer(1)
    morph_steps: int = integer(2)


@dataclass(kw_only=True)
class PathsConfig:
    output_root: str = path(nonempty=True)


@dataclass(kw_only=True)
class TrainConfig:
    """conf/train.yaml: one training run."""

    seed: int = integer(0)
    data: DataConfig
    model: ModelConfig
    optim: OptimConfig
    trainer: TrainerConfig
    log: LogConfig
    eval: EvalConfig
    sample: SampleConfig
    pictures: PicturesConfig
    ckpt_path: str | None = path(optional=True, words=("last",))
    paths: PathsConfig
