"""Readers for logged bandit data from files the user provides."""

from dts_ppl.data.open_bandit import LoggedData, read_open_bandit

__all__ = ["LoggedData", "read_open_bandit"]
