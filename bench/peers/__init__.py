"""Peers served beside us on the same load, for comparison."""
