"""Train a VAE, then evaluate it: `python train.py`, `lego-vae-train` or `python -m lego_vae.train` (conf/train.yaml)."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lego_vae.cli import finish, run_app
from lego_vae.training.run import train_and_evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def app(cfg: DictConfig) -> None:
    run_app(train_and_evaluate, cfg, HydraConfig.get().runtime.output_dir)


def main() -> None:
    """The command: Hydra runs app once, or once per job with -m; then a non-zero exit if a multirun job failed."""
    app()
    finish()


if __name__ == "__main__":
    main()
