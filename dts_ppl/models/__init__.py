"""Trained priors shipped with the package (package data; see studies/priors/README.md in the repository)."""
