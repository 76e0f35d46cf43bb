"""Training a DDPM on samples of action parameters (docs/math.md section 5)."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike, DTypeLike
from tqdm.auto import tqdm

from dts_ppl._version import __version__
from dts_ppl.core import checks as _checks
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.ddpm.calibrate import MARGINAL, OVERRIDE_RULE, _json_action_cov, action_cov_calibration
from dts_ppl.ddpm.network import EMBED_DIM, EpsNet, eps_net, init_eps_net, step_embedding
from dts_ppl.ddpm.prior import action_covariance, build_prior
from dts_ppl.ddpm.schedule import level_variances, noise_schedule, schedule_arrays
from dts_ppl.plotting import pyplot


class TrainedPrior(NamedTuple):
    """Result of :func:`train_diffusion_prior`.

    Attributes:
        prior: the DiffusionPrior (DDPM links).
        losses: (steps,) training loss (mean squared epsilon error per coordinate) per step.
        params: the trained EpsNet (float32).
        metadata: dict of every choice made (schedule, betas, L, d, standardisation, ...),
            written by :func:`dts_ppl.save_prior`.
    """

    prior: DiffusionPrior
    losses: np.ndarray
    params: EpsNet
    metadata: dict

    def plot_losses(self, path: str | os.PathLike | None = None, ax: Any = None, window: int = 50) -> Any:
        """Plot the loss curve (raw and a moving average); save to ``path`` if given. Returns the Axes."""
        return plot_loss_curve(self.losses, path=path, ax=ax, window=window)


def plot_loss_curve(losses, path=None, ax=None, window: int = 50):
    plt = pyplot(headless=ax is None and path is not None)

    losses = np.asarray(losses)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.5, alpha=0.4, color="C0", label="per step")
    if len(losses) >= window:
        avg = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, len(losses) + 1), avg, color="C0", label=f"moving average ({window})")
    ax.set_xlabel("step")
    ax.set_ylabel("epsilon MSE")
    ax.set_yscale("log")
    ax.legend(frameon=False)
    if path is not None:
        ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=120)
    return ax


def _make_update(optimiser, data, sqrt_abar, sqrt_1m_abar, emb, batch_size):
    n, L = data.shape[0], sqrt_abar.shape[0]

    def loss_fn(params, key):
        k_idx, k_lev, k_eps = jax.random.split(key, 3)
        x0 = data if batch_size == n else data[jax.random.randint(k_idx, (batch_size,), 0, n)]
        lev = jax.random.randint(k_lev, (batch_size,), 0, L)
        eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
        xt = sqrt_abar[lev, None] * x0 + sqrt_1m_abar[lev, None] * eps
        pred = jax.vmap(eps_net, in_axes=(None, 0, 0))(params, xt, emb[lev])
        return jnp.mean((pred - eps) ** 2)

    def step(carry, key):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, key)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step


def train_diffusion_prior(
    samples: ArrayLike,
    num_levels: int = 40,
    schedule: str | ArrayLike = "cosine",
    hidden: int = 64,
    steps: int = 5000,
    key: jax.Array | None = None,
    variance: str = "beta",
    action_cov: float | str | ArrayLike = MARGINAL,
    learning_rate: float = 1e-3,
    batch_size: int | None = None,
    max_beta: float = 0.5,
    progress: bool = True,
    dtype: DTypeLike | None = None,
    calibration_draws: int = 20_000,
) -> TrainedPrior:
    """Train a DDPM on samples of action parameters and return it as a diffusion prior.

    Args:
        samples: (N, d) offline samples of theta (N >= 2, every coordinate non-constant).
        num_levels: L, the number of diffusion steps = levels of the prior.
        schedule: "cosine" (default), "linear" or an (L,) array of betas.
        hidden: width of the two hidden layers of the epsilon-network.
        steps: Adam steps.
        key: PRNG key (default PRNGKey(0)).
        variance: "beta" or "betatilde" for S_2..S_L.
        action_cov: "marginal" (default): S_1 calibrated so that the prior's theta marginal
            covariance matches the samples' (:mod:`dts_ppl.ddpm.calibrate`; eigenvalue floor
            beta_1). An override in standardised units: a float s (s I; 1.0 was the default
            before 0.2), "beta" (beta_1 I) or a (d,) / (d, d) array.
        learning_rate: Adam learning rate (the paper: 1e-3).
        batch_size: default min(2048, N) (the paper).
        max_beta: clip for named schedules.
        progress: show a tqdm bar.
        dtype: dtype of the prior's arrays (default: JAX's default float).
        calibration_draws: prior draws of psi_1 for the "marginal" rule (key: fold_in(key, 1)).

    Returns:
        TrainedPrior(prior, losses (steps,), params, metadata).

    Example:
        >>> from dts_ppl.experiments.swissroll import make_swiss_roll
        >>> x = make_swiss_roll(2000, noise=0.5, random_state=0)[:, [0, 2]]
        >>> trained = train_diffusion_prior(x, num_levels=10, steps=200, progress=False)
        >>> trained.prior.num_levels, trained.prior.dim, trained.losses.shape
        (10, 2, (200,))
    """
    key = _checks.optional_key(key)
    x = np.asarray(_checks.as_array("samples", samples, ndim=2), np.float64)
    _checks.check_finite("samples", x)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"samples: expected at least 2 samples (rows), got {n}")
    hidden = _checks.check_positive_int("hidden", hidden)
    steps = _checks.check_positive_int("steps", steps)
    num_levels = _checks.check_positive_int("num_levels", num_levels)
    learning_rate = _checks.check_scalar("learning_rate", learning_rate)
    max_beta = _checks.check_scalar("max_beta", max_beta)
    batch_size = min(2048, n) if batch_size is None else _checks.check_positive_int("batch_size", batch_size)
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size: expected 1..N = {n}, got {batch_size}")
    betas = noise_schedule(schedule, num_levels, max_beta)
    level_variances(betas, variance)  # validates `variance`
    mean, scale = x.mean(0), x.std(0)
    if np.any(scale <= 0):
        raise ValueError(f"samples: coordinate {int(np.argmin(scale))} is constant; cannot standardise")
    calibrate = isinstance(action_cov, str) and action_cov == MARGINAL
    if calibrate:
        calibration_draws = _checks.check_positive_int("calibration_draws", calibration_draws)
    else:
        action_covariance(action_cov, betas, scale, d)  # validate before training
    k_init, k_train = jax.random.split(key)

    _, abar, _ = schedule_arrays(betas)
    data = jnp.asarray((x - mean) / scale, jnp.float32)
    emb = step_embedding(np.arange(1, len(betas) + 1))
    optimiser = optax.adam(learning_rate)
    params = init_eps_net(k_init, d, int(hidden))
    step = _make_update(
        optimiser,
        data,
        jnp.asarray(np.sqrt(abar), jnp.float32),
        jnp.asarray(np.sqrt(1 - abar), jnp.float32),
        emb,
        batch_size,
    )
    # jitted scans of 100 steps between progress updates (the last, shorter chunk compiles once more)
    run_chunk = jax.jit(lambda carry, keys: jax.lax.scan(step, carry, keys))
    carry = (params, optimiser.init(params))
    keys = jax.random.split(k_train, int(steps))
    losses = []
    with tqdm(total=int(steps), desc="training DDPM prior", disable=not progress, leave=False) as bar:
        for start in range(0, int(steps), 100):
            carry, loss = run_chunk(carry, keys[start : start + 100])
            losses.append(np.asarray(loss))
            bar.update(int(loss.shape[0]))
            bar.set_postfix(loss=f"{float(np.mean(losses[-1])):.4f}")
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), carry[0])
    losses = np.concatenate(losses)
    if not np.all(np.isfinite(losses)):
        raise ValueError("learning_rate: training diverged (non-finite loss); try a smaller learning rate")
    outer = scale[:, None] * scale[None, :]
    if calibrate:
        # the chain's psi draws do not depend on S_1: calibrate from the prior built with beta_1 I
        first = build_prior(params, betas, mean, scale, variance, "beta", dtype)
        cal = action_cov_calibration(first, x, jax.random.fold_in(key, 1), calibration_draws, float(betas[0]))
        prior = build_prior(params, betas, mean, scale, variance, cal.cov1 / outer, dtype)
        rule = (
            f"marginal: S_1 = Cov(samples) - Cov(f_1(psi_1)) over {calibration_draws} prior draws of psi_1, "
            f"eigenvalues (standardised by the samples' sds) clipped at beta_1 = {float(betas[0]):.4g}"
        )
        calibration = dict(
            num_draws=int(calibration_draws),
            floor=cal.floor,
            num_clipped=cal.num_clipped,
            eigenvalues=cal.eigenvalues.tolist(),
            data_cov=cal.data_cov.tolist(),
            link_cov=cal.link_cov.tolist(),
        )
    else:
        prior = build_prior(params, betas, mean, scale, variance, action_cov, dtype)
        rule = OVERRIDE_RULE
        calibration = None
    metadata = dict(
        kind="ddpm",
        package_version=__version__,
        num_levels=int(len(betas)),
        dim=int(d),
        schedule=schedule if isinstance(schedule, str) else "custom",
        betas=betas.tolist(),
        max_beta=float(max_beta),
        variance=variance,
        action_cov=_json_action_cov(action_cov),
        action_cov_rule=rule,
        cov1=np.asarray(prior.cov1, np.float64).tolist(),
        hidden=int(hidden),
        embed_dim=EMBED_DIM,
        steps=int(steps),
        learning_rate=float(learning_rate),
        batch_size=int(batch_size),
        num_samples=int(n),
        standardisation=dict(mean=mean.tolist(), scale=scale.tolist()),
        final_loss=float(np.mean(losses[-min(100, len(losses)) :])),
        loss_curve_per_100_steps=[float(np.mean(c)) for c in np.array_split(losses, -(-len(losses) // 100))],
    )
    if calibration is not None:
        metadata["action_cov_calibration"] = calibration
    return TrainedPrior(prior, losses, params, metadata)
