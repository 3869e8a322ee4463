"""Tests of lego_vae/config."""
