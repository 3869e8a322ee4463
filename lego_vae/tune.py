"""Tune hidden/latent size by Bayesian optimisation, then refit the best: `python tune.py` or `lego-vae-tune` (conf/tune.yaml)."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lego_vae.cli import finish, run_app
from lego_vae.tuning.study import tune


@hydra.main(version_base="1.3", config_path="conf", config_name="tune")
def app(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_app(tune, cfg, hydra_cfg.runtime.output_dir, list(hydra_cfg.overrides.task))


def main() -> None:
    """The command: Hydra runs app once, or once per job with -m; then a non-zero exit if a multirun job failed."""
    app()
    finish()


if __name__ == "__main__":
    main()
