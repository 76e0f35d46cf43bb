"""The lab: study scripts and their results (not part of the installed package; see studies/README.md)."""
