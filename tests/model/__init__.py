"""Tests of lego_vae/model."""
