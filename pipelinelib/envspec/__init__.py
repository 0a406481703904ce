"""Desired-state environment specs: load, render, diff, live state."""
