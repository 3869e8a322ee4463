"""The Hydra configs of every command, shipped inside the package: each default lives here, commented."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent  # for hydra.initialize_config_dir (tests, bench)
