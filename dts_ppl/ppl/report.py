"""What a guide-vs-NUTS validation returns: per-site results and the report, as a table and as JSON."""

from __future__ import annotations

import json
import math
import os
from typing import NamedTuple

import numpy as np

from dts_ppl.ppl.nuts import DEFAULT_GATES, NutsDiagnostics, NutsResult, ReferenceGates


class SiteReport(NamedTuple):
    """Guide vs NUTS for one latent site; per-coordinate arrays have the site's shape.

    Attributes:
        std_mean_error: |E_guide - E_nuts| / sd_nuts per coordinate.
        std_mean_error_mcse: its Monte-Carlo standard error when the guide is exact,
            sqrt(1 / ESS_nuts + 1 / num_guide_draws) per coordinate.
        sd_ratio: sd_guide / sd_nuts per coordinate.
        distance: energy distance between all guide draws and one half of the NUTS draws
            (the first half of the chains, or of the draws with one chain), every coordinate
            standardised by its NUTS mean and sd.
        distance_nuts_floor: the same distance between the other half of the NUTS draws and
            that half: the noise floor. The distance's finite-sample floor grows with
            1/n_eff of each sample, so an exact guide, whose draws are independent and (by
            default) twice as many as a half, scores at or a little below it; a ratio
            distance / floor well above 1 is approximation error.
    """

    std_mean_error: np.ndarray
    std_mean_error_mcse: np.ndarray
    sd_ratio: np.ndarray
    distance: float
    distance_nuts_floor: float

    @property
    def max_std_mean_error(self) -> float:
        """The largest standardised mean error over coordinates."""
        return float(np.max(self.std_mean_error))

    @property
    def mean_std_mean_error(self) -> float:
        """The standardised mean error averaged over coordinates."""
        return float(np.mean(self.std_mean_error))

    @property
    def mcse(self) -> float:
        """Monte-Carlo standard error of the standardised mean errors (the largest over coordinates)."""
        return float(np.max(self.std_mean_error_mcse))

    @property
    def max_z(self) -> float:
        """Largest standardised mean error in units of its Monte-Carlo standard error."""
        return float(np.max(self.std_mean_error / self.std_mean_error_mcse))

    def to_dict(self) -> dict:
        """The site's summary numbers: errors, sd ratio range, distance and its NUTS floor."""
        return {
            "max_std_mean_error": self.max_std_mean_error,
            "mean_std_mean_error": self.mean_std_mean_error,
            "sd_ratio_min": float(np.min(self.sd_ratio)),
            "sd_ratio_max": float(np.max(self.sd_ratio)),
            "distance": float(self.distance),
            "distance_nuts_floor": float(self.distance_nuts_floor),
        }


def _json_float(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


class ValidationReport(NamedTuple):
    """What :func:`dts_ppl.validate` returns. ``print(report)`` shows a table; ``to_dict``/``to_json`` export it.

    Attributes:
        sites: {site: SiteReport}.
        psis_khat: Pareto k-hat of p(y, z) / q(z), z ~ guide (< 0.5 good, > 0.7 unreliable;
            -inf when the weights are constant, i.e. the guide is exact to round-off).
        nuts: NutsDiagnostics of the reference run.
        guide_samples: {site: (num_guide_draws, *site_shape)} numpy draws of the guide.
        nuts_result: the NutsResult the guide was compared with.
        gates: the ReferenceGates the reference is judged by.
        psis_parameterisation: the model k-hat was measured on ("centred" or "noncentred").
    """

    sites: dict
    psis_khat: float
    nuts: NutsDiagnostics
    guide_samples: dict
    nuts_result: NutsResult
    gates: ReferenceGates = DEFAULT_GATES
    psis_parameterisation: str = "centred"

    @property
    def reference_problems(self) -> list[str]:
        """The quality gates the NUTS reference fails (empty: it is reliable)."""
        return self.nuts.problems(self.gates)

    @property
    def reliable(self) -> bool:
        """True when the NUTS reference passes every gate, so the comparison can be trusted."""
        return not self.reference_problems

    def to_dict(self) -> dict:
        """{"sites": {SITE: {...}}, "psis_khat", "psis_parameterisation", "nuts": {...}}.

        ``nuts`` holds "rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "reliable",
        "problems" (the failed gates), "gates" (the thresholds) and "settings" (the NutsSettings
        fields and "wall_s", the run's wall time, when known). Non-finite numbers (k-hat of an
        exact guide is -inf) become None so the JSON is strict.
        """
        run = self.nuts_result
        settings = None if run.settings is None else {**run.settings._asdict(), "wall_s": _json_float(run.wall_s)}
        return {
            "sites": {k: {n: _json_float(v) for n, v in s.to_dict().items()} for k, s in self.sites.items()},
            "psis_khat": _json_float(self.psis_khat),
            "psis_parameterisation": self.psis_parameterisation,
            "nuts": {
                "rhat_max": _json_float(self.nuts.rhat_max),
                "ess_bulk_min": _json_float(self.nuts.ess_bulk_min),
                "ess_tail_min": _json_float(self.nuts.ess_tail_min),
                "divergences": int(self.nuts.divergences),
                "reliable": self.reliable,
                "problems": self.reference_problems,
                "gates": self.gates._asdict(),
                "settings": settings,
            },
        }

    def to_json(self, path: str | os.PathLike | None = None, **extra: object) -> str:
        """The dict as JSON (``extra`` keys first, e.g. ``preset="linear"``); written to ``path`` if given."""
        text = json.dumps({**extra, **self.to_dict()}, indent=2)
        if path is not None:
            with open(os.fspath(path), "w") as f:
                f.write(text + "\n")
        return text

    def __str__(self) -> str:
        head = (
            f"{'site':<8}{'max|dmean|/sd':>15}{'mean|dmean|/sd':>16}{'MC se':>8}{'max z':>7}"
            f"{'sd ratio min':>14}{'max':>7}{'energy dist':>13}{'NUTS floor':>12}"
        )
        rows = [head, "-" * len(head)]
        for name, s in self.sites.items():
            d = s.to_dict()
            rows.append(
                f"{name:<8}{d['max_std_mean_error']:>15.3f}{d['mean_std_mean_error']:>16.3f}"
                f"{s.mcse:>8.3f}{s.max_z:>7.2f}{d['sd_ratio_min']:>14.3f}"
                f"{d['sd_ratio_max']:>7.3f}{d['distance']:>13.4f}{d['distance_nuts_floor']:>12.4f}"
            )
        rows.append(
            f"PSIS k-hat {self.psis_khat:.3f} ({self.psis_parameterisation} model)   NUTS: R-hat max "
            f"{self.nuts.rhat_max:.3f}, bulk ESS min {self.nuts.ess_bulk_min:.0f}, tail ESS min "
            f"{self.nuts.ess_tail_min:.0f}, divergences {self.nuts.divergences}"
        )
        g = self.gates
        if self.reliable:
            rows.append(
                f"NUTS reference: reliable (divergences <= {g.max_divergences}, R-hat <= {g.rhat_max}, "
                f"bulk and tail ESS >= {g.ess_min:.0f})"
            )
        else:
            rows.append(
                "NUTS reference: UNRELIABLE (" + "; ".join(self.reference_problems) + "): the errors above "
                "may be NUTS's own; rerun with more warm-up/draws/chains, dense mass or the non-centred model"
            )
        return "\n".join(rows)
