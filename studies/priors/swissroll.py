"""Train (or reload) the shipped Swiss-roll prior, draw the README figure and measure it.

    PYTHONPATH=. python studies/priors/swissroll.py            # reuse the cache / shipped weights if present
    PYTHONPATH=. python studies/priors/swissroll.py --retrain  # train from scratch (about 2-4 min on 2 cores)

Writes dts_ppl/models/swissroll_L40.npz (the prior, with its metadata) and studies/priors/swissroll.png (prior
samples over the training data, and the loss curve), and prints the energy distances to
held-out roll samples of: the DDPM's own samples, the prior of one action as dTS uses it, a
Gaussian fit, and a second roll sample (the finite-sample floor).
"""

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dts_ppl import save_prior  # noqa: E402
from dts_ppl.core import inference as core  # noqa: E402
from dts_ppl.experiments.swissroll import swiss_roll, swiss_roll_prior  # noqa: E402
from dts_ppl.ppl.distances import energy_distance  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def ddpm_samples(prior, meta, key, num):
    """Samples of the DDPM itself: the chain with S_1 = beta_1 (its last reverse step)."""
    scale = np.asarray(meta["standardisation"]["scale"])
    ddpm = prior._replace(cov1=jnp.asarray(meta["betas"][0] * np.diag(scale**2), prior.cov1.dtype))
    return np.asarray(core.sample(key, ddpm, core.prior_conditionals(ddpm, 1), (num,))[1][:, 0])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--retrain", action="store_true", help="ignore the shipped weights and the cache")
    parser.add_argument("--num-eval", type=int, default=2000)
    args = parser.parse_args()

    t0 = time.time()
    prior, meta = swiss_roll_prior(10_000, 40, seed=0, cache=not args.retrain)
    print(f"prior ready in {time.time() - t0:.0f}s (L={prior.num_levels}, final loss {meta['final_loss']:.4f})")
    save_prior(ROOT / "dts_ppl" / "models" / "swissroll_L40.npz", prior, meta)

    m = args.num_eval
    train = swiss_roll(10_000, seed=0)
    held_out = swiss_roll(m, seed=1)
    k1, k2 = jax.random.split(jax.random.PRNGKey(2))
    ddpm = ddpm_samples(prior, meta, k1, m)
    as_used = np.asarray(core.sample(k2, prior, core.prior_conditionals(prior, 1), (m,))[1][:, 0])
    rng = np.random.default_rng(3)
    gauss = rng.multivariate_normal(train.mean(0), np.cov(train.T), m)
    rows = [
        ("DDPM samples (S_1 = beta_1)", ddpm),
        ("dTS prior of one action (S_1 = I)", as_used),
        ("Gaussian fit to the training data", gauss),
        ("second roll sample (floor)", swiss_roll(m, seed=2)),
    ]
    print(f"energy distance to {m} held-out roll samples ({m} draws each, standardised units):")
    for name, draws in rows:
        print(f"  {name:<38} {energy_distance(draws, held_out):.3f}")

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (name, draws) in zip(axes[:2], rows[:2], strict=True):
        ax.scatter(*train[:m].T, s=3, c="0.6", label="training data")
        ax.scatter(*draws.T, s=3, c="C1", alpha=0.7, label="prior samples")
        ax.set_title(name)
        ax.set_aspect("equal")
        ax.legend(frameon=False, loc="lower left", markerscale=3)
    curve = meta["loss_curve_per_100_steps"]
    axes[2].plot(100 * np.arange(1, len(curve) + 1), curve)
    axes[2].set(xlabel="step", ylabel="epsilon MSE (mean of 100 steps)", yscale="log", title="training loss")
    fig.tight_layout()
    fig.savefig(HERE / "swissroll.png", dpi=90)
    print(f"wrote {HERE / 'swissroll.png'}")


if __name__ == "__main__":
    main()
