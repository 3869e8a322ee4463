"""Tests of lego_vae/explorer."""
