"""Faces from a checkpoint: `python -m lego_vae.generate checkpoint=RUN` or `lego-vae-generate` (conf/generate.yaml)."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lego_vae.cli import finish, run_app
from lego_vae.evaluation.generating import generate


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
def app(cfg: DictConfig) -> None:
    run_app(generate, cfg, HydraConfig.get().runtime.output_dir)


def main() -> None:
    """The command: Hydra runs app once, or once per job with -m; then a non-zero exit if a multirun job failed."""
    app()
    finish()


if __name__ == "__main__":
    main()
