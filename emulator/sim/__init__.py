"""Deterministic discrete-event simulation of a deployment (virtual clock, simulated network)."""
