"""Trained priors shipped with the package (package data; see models/README.md in the repository)."""
