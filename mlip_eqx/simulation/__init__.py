"""Simulations with a trained force field (ASE calculator)."""
