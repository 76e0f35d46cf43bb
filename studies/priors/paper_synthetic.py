"""The paper's synthetic diffusion priors (docs/math.md section 8), drawn once with fixed keys and saved.

    PYTHONPATH=. python studies/priors/paper_synthetic.py      # rewrites dts_ppl/models/{linear,mlp}_d*_L*.npz

Linear: W_l ~ U[-1, 1]^{d x d} with the last d - d_l columns zeroed, S_l = I:
(d, L) = (5, 2) with (d_1, d_2) = (5, 2), and (20, 4) with (20, 10, 5, 2).
MLP: each f_l a 2-layer ReLU MLP (d -> hidden -> d) with U[-1, 1] weights and biases, S_l = I:
width 20 for d = 5 (L = 2) and 60 for d = 20 (L = 4).
"""

from pathlib import Path

import jax

from dts_ppl import save_prior
from dts_ppl.experiments.synthetic import random_linear_prior, random_mlp_prior

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

DECLARATIONS = {
    "linear_d5_L2": dict(kind="linear", dim=5, active_dims=(5, 2), seed=0),
    "linear_d20_L4": dict(kind="linear", dim=20, active_dims=(20, 10, 5, 2), seed=0),
    "mlp_d5_L2": dict(kind="mlp", dim=5, num_levels=2, hidden=20, seed=0),
    "mlp_d20_L4": dict(kind="mlp", dim=20, num_levels=4, hidden=60, seed=0),
}


def build(name: str):
    """The prior of one declaration (float64 when x64 is on)."""
    spec = dict(DECLARATIONS[name])
    key = jax.random.PRNGKey(spec.pop("seed"))
    if spec.pop("kind") == "linear":
        return random_linear_prior(key, spec["dim"], spec["active_dims"])
    return random_mlp_prior(key, spec["dim"], spec["num_levels"], spec["hidden"])


def main():
    jax.config.update("jax_enable_x64", True)
    for name, spec in DECLARATIONS.items():
        path = ROOT / "dts_ppl" / "models" / f"{name}.npz"
        save_prior(path, build(name), dict(spec, source="paper synthetic (arXiv 2402.10028, section 5)"))
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
