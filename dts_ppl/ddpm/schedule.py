"""DDPM noise schedules and level variances (docs/math.md section 5)."""

from __future__ import annotations

import numpy as np

SCHEDULES = ("cosine", "linear")
VARIANCES = ("beta", "betatilde")


def noise_schedule(schedule="cosine", num_levels: int = 40, max_beta: float = 0.5) -> np.ndarray:
    """The DDPM betas beta_1..beta_L as a float64 numpy array (L,).

    Args:
        schedule: "cosine", "linear" or an explicit (L,) array with entries in (0, 1).
        num_levels: L.
        max_beta: upper clip applied to named schedules.
    """
    if int(num_levels) != num_levels or num_levels < 1:
        raise ValueError(f"num_levels: expected a positive integer, got {num_levels!r}")
    L = int(num_levels)
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {SCHEDULES} or an array of betas, got {schedule!r}")
        if not 0 < max_beta < 1:
            raise ValueError(f"max_beta: expected a value in (0, 1), got {max_beta}")
        if schedule == "cosine":
            s = 0.008
            t = np.arange(L + 1) / L
            abar = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
            betas = 1 - abar[1:] / abar[:-1]
        else:
            scale = 1000.0 / L
            betas = np.linspace(scale * 1e-4, scale * 0.02, L)
        return np.clip(betas, 1e-8, max_beta)
    betas = np.asarray(schedule, dtype=np.float64)
    if betas.shape != (L,):
        raise ValueError(f"schedule: expected {L} betas (one per level), got shape {betas.shape}")
    if not np.all(np.isfinite(betas)) or np.any(betas <= 0) or np.any(betas >= 1):
        raise ValueError("schedule: every beta must lie in (0, 1)")
    return betas


def schedule_arrays(betas):
    alphas = 1.0 - betas
    abar = np.cumprod(alphas)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    return alphas, abar, abar_prev


def level_variances(betas, variance: str = "beta") -> np.ndarray:
    """sigma_l^2 for l = 1..L: beta_l or betatilde_l = beta_l (1 - abar_{l-1}) / (1 - abar_l)."""
    if variance not in VARIANCES:
        raise ValueError(f"variance: expected one of {VARIANCES}, got {variance!r}")
    if variance == "beta":
        return np.asarray(betas, np.float64)
    _, abar, abar_prev = schedule_arrays(np.asarray(betas, np.float64))
    return betas * (1 - abar_prev) / (1 - abar)
