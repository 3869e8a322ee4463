"""Tests of lego_vae/data."""
