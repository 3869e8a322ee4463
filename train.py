"""Train the VAE: python train.py [model.hidden=512 model.latent=32 ...] (see conf/train.yaml)."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lego_vae.cli import run_app
from lego_vae.training import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    run_app(train, cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
