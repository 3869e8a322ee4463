"""python -m lego_vae.explore checkpoint=PATH: the command line of lego_vae.explore.command."""

import sys

from lego_vae.explore.command import main

if __name__ == "__main__":
    sys.exit(main())
