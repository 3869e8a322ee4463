"""The test suite (a package: a site-packages `tests` of torch-fidelity must not shadow it)."""
