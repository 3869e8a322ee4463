"""The face explorer in the browser: `python -m lego_vae.explore checkpoint=RUN` or `lego-vae-explore` (conf/explore.yaml)."""

from lego_vae.cli import command


def run(cfg):
    """Serve the explorer (lego_vae.explorer.serve.explore), imported once the config is checked."""
    from lego_vae.explorer.serve import explore

    return explore(cfg)


main = command("explore", run)

if __name__ == "__main__":
    main()
