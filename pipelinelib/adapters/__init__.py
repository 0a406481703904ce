"""Adapters: one thin module per outside system; each translates its errors into ours."""
