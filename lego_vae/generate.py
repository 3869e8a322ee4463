"""python -m lego_vae.generate checkpoint=PATH: the command line of lego_vae.evaluation.generate."""

import sys

from lego_vae.evaluation.generate import main

if __name__ == "__main__":
    sys.exit(main())
