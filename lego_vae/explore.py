"""The face explorer in the browser: `python -m lego_vae.explore checkpoint=RUN` or `lego-vae-explore` (conf/explore.yaml)."""

import hydra
from omegaconf import DictConfig

from lego_vae.cli import finish, run_app
from lego_vae.explorer.serve import explore


@hydra.main(version_base="1.3", config_path="conf", config_name="explore")
def app(cfg: DictConfig) -> None:
    run_app(explore, cfg)


def main() -> None:
    """The command: Hydra runs app once, or once per job with -m; then a non-zero exit if a multirun job failed."""
    app()
    finish()


if __name__ == "__main__":
    main()
