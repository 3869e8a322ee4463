"""Tests of the commands (train, tune, evaluate, generate, explore) and the package as installed."""
