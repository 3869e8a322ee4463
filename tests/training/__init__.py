"""Tests of lego_vae/training."""
