"""Evaluate a trained run again: `python -m lego_vae.evaluate checkpoint=RUN` or `lego-vae-evaluate` (conf/evaluate.yaml)."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lego_vae.cli import finish, run_app
from lego_vae.evaluation.run import evaluate_checkpoint


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def app(cfg: DictConfig) -> None:
    run_app(evaluate_checkpoint, cfg, list(HydraConfig.get().overrides.task))


def main() -> None:
    """The command: Hydra runs app once, or once per job with -m; then a non-zero exit if a multirun job failed."""
    app()
    finish()


if __name__ == "__main__":
    main()
