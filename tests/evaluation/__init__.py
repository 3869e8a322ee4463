"""Tests of lego_vae/evaluation."""
