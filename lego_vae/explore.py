"""The face explorer in the browser: `python -m lego_vae.explore checkpoint=RUN` or `lego-vae-explore` (conf/explore.yaml)."""

from lego_vae.cli import command

main = command("explore", "lego_vae.explorer.serve:explore")

if __name__ == "__main__":
    main()
