"""Diffusion priors learned from samples: DDPM epsilon-prediction training (MATH.md section 5).

Given offline samples x_0 = theta (N, d), train an epsilon-network eps(x, l) with the standard
DDPM loss and turn it into a :class:`~dts_ppl.DiffusionPrior` with psi_l = x_l:

    f_l(x)  = (x - beta_l / sqrt(1 - abar_l) * eps(x, l)) / sqrt(alpha_l)     l = 1..L
    S_l     = sigma_l^2 I                                                      l = 2..L
    S_{L+1} = I,      S_1 = the ``action_cov`` choice (see below)

Everything the paper leaves open is an explicit choice here (all arguments of
:func:`train_diffusion_prior`):

- **Standardisation.** Each coordinate of the samples is z-scored before training; the chain
  lives in standardised units and f_1 / S_1 map back (f_1(x) = mean + scale * (...),
  S_1 = diag(scale) S_1^std diag(scale)). Standardised data make x_l have identity covariance
  at every level, so the top prior N(0, I) is exact in its first two moments whatever abar_L.
- **Schedule** (``schedule``): "cosine" (Nichol & Dhariwal 2021, s = 0.008; the default),
  "linear" (Ho et al. 2020's 1e-4..0.02 rescaled by 1000 / L, as in improved-diffusion), or an
  explicit (L,) array of betas. Betas are clipped to ``max_beta`` = 0.5 (not the usual 0.999):
  with few levels the last cosine betas approach 1, and 1 / sqrt(alpha_l) would amplify the
  network's errors; at the top the clip only leaves a signal of sqrt(abar_L) in x_L
  (0.03 for L = 40), and x_L still has identity covariance.
- **Network.** eps(x, l) = W3 relu(W2 relu(W1 [x, e(l)] + b1) + b2) + b3: two hidden ReLU layers
  of width ``hidden`` (default 64), the step entering through a 16-d sinusoidal embedding e(l)
  (Vaswani et al.). He-normal initialisation, zero output layer.
- **Optimisation** (the paper's): Adam, learning rate 1e-3, batch min(2048, N) drawn with
  replacement each step (the full data set when N <= 2048), ``steps`` steps; training runs in
  float32.
- **Variances** (``variance``): sigma_l^2 = beta_l ("beta", the default) or the posterior
  variance betatilde_l = beta_l (1 - abar_{l-1}) / (1 - abar_l) ("betatilde").
- **S_1** (``action_cov``): how far actions may differ from each other given the shared psi_1.
  A DDPM's own value (beta_1, or betatilde_1 = 0) makes every action nearly identical a priori,
  which is the right prior only when actions truly share one parameter. The default, a float
  s, gives S_1 = s I in standardised units (s = 1: each action may deviate from f_1(psi_1) by
  about the spread of the data). "beta" gives beta_1 I. A (d,) or (d, d) array is taken in
  standardised units too.

The trained links are :class:`DDPMLink` NamedTuples (``__call__``, ``linearise``,
``is_linear``), stacked over levels 2..L like every other link, so the posterior, the NumPyro
model and guide and the agents use them unchanged. "identity" linearisation of a DDPM link is
the paper's rule applied in the standardised coordinates the network was trained in:
W = diag(out_scale), c = out_shift (that is W = I, c = 0 for levels >= 2, and the
de-standardisation for f_1).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dts_ppl import _checks
from dts_ppl.links import _jacobian_linearisation
from dts_ppl.prior import DiffusionPrior, _stack

SCHEDULES = ("cosine", "linear")
VARIANCES = ("beta", "betatilde")
EMBED_DIM = 16


# ------------------------------------------------------------------------------- schedule


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


def _schedule_arrays(betas):
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
    _, abar, abar_prev = _schedule_arrays(np.asarray(betas, np.float64))
    return betas * (1 - abar_prev) / (1 - abar)


def step_embedding(levels, dim: int = EMBED_DIM):
    """Sinusoidal embedding of integer levels (...,) -> (..., dim)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half) / half)
    ang = jnp.asarray(levels, jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], axis=-1)


# -------------------------------------------------------------------------------- network


class EpsNet(NamedTuple):
    """Parameters of eps(x, l) = w3 relu(w2 relu(w_x x + w_t e(l) + b1) + b2) + b3.

    Attributes:
        w_x: (hidden, d)   w_t: (hidden, 16)   b1: (hidden,)
        w2: (hidden, hidden)   b2: (hidden,)   w3: (d, hidden)   b3: (d,)
    """

    w_x: jax.Array
    w_t: jax.Array
    b1: jax.Array
    w2: jax.Array
    b2: jax.Array
    w3: jax.Array
    b3: jax.Array


def init_eps_net(key, dim: int, hidden: int) -> EpsNet:
    k1, k2 = jax.random.split(key)
    fan_in = dim + EMBED_DIM
    w1 = jax.random.normal(k1, (hidden, fan_in), jnp.float32) * jnp.sqrt(2.0 / fan_in)
    w2 = jax.random.normal(k2, (hidden, hidden), jnp.float32) * jnp.sqrt(2.0 / hidden)
    zeros = lambda *s: jnp.zeros(s, jnp.float32)  # noqa: E731
    return EpsNet(w1[:, :dim], w1[:, dim:], zeros(hidden), w2, zeros(hidden), zeros(dim, hidden), zeros(dim))


def eps_net(params: EpsNet, x, emb):
    """eps(x, l) for one x (d,) with embedding emb (16,)."""
    h = jax.nn.relu(params.w_x @ x + params.w_t @ emb + params.b1)
    h = jax.nn.relu(params.w2 @ h + params.b2)
    return params.w3 @ h + params.b3


# ---------------------------------------------------------------------------------- link


class DDPMLink(NamedTuple):
    """Reverse-diffusion mean of one DDPM step, de-standardised:

        f(x) = out_shift + out_scale * (x_coef * x - eps_coef * eps(x)),
        eps(x) = w3 relu(w2 relu(w_x x + b_in) + b2) + b3,

    with x_coef = 1 / sqrt(alpha_l), eps_coef = beta_l / (sqrt(1 - abar_l) sqrt(alpha_l)), the
    step embedding folded into b_in = b1 + w_t e(l), and out_scale = 1, out_shift = 0 except
    for f_1 (which undoes the standardisation).

    Attributes:
        w_x: (hidden, d)   b_in: (hidden,)   w2: (hidden, hidden)   b2: (hidden,)
        w3: (d, hidden)   b3: (d,)   x_coef: ()   eps_coef: ()   out_scale: (d,)   out_shift: (d,)
    """

    w_x: jax.Array
    b_in: jax.Array
    w2: jax.Array
    b2: jax.Array
    w3: jax.Array
    b3: jax.Array
    x_coef: jax.Array
    eps_coef: jax.Array
    out_scale: jax.Array
    out_shift: jax.Array

    @property
    def is_linear(self) -> bool:
        return False

    def eps(self, x):
        h = jax.nn.relu(self.w_x @ x + self.b_in)
        h = jax.nn.relu(self.w2 @ h + self.b2)
        return self.w3 @ h + self.b3

    def __call__(self, x):
        return self.out_shift + self.out_scale * (self.x_coef * x - self.eps_coef * self.eps(x))

    def linearise(self, point, method: str = "identity"):
        if method == "identity":
            return jnp.diag(self.out_scale), self.out_shift
        return _jacobian_linearisation(self, point)


def ddpm_links(params: EpsNet, betas, mean, scale, dtype=None) -> list[DDPMLink]:
    """The L trained links f_1..f_L (f_1 de-standardises)."""
    dtype = dtype or jnp.result_type(float)
    betas = np.asarray(betas, np.float64)
    alphas, abar, _ = _schedule_arrays(betas)
    levels = np.arange(1, len(betas) + 1)
    b_in = params.b1[None] + step_embedding(levels) @ params.w_t.T  # (L, hidden), float32 like training
    d = params.w_x.shape[1]
    links = []
    for i in range(len(betas)):
        first = i == 0
        link = DDPMLink(
            params.w_x,
            b_in[i],
            params.w2,
            params.b2,
            params.w3,
            params.b3,
            jnp.asarray(1.0 / np.sqrt(alphas[i])),
            jnp.asarray(betas[i] / (np.sqrt(1.0 - abar[i]) * np.sqrt(alphas[i]))),
            jnp.asarray(scale) if first else jnp.ones(d),
            jnp.asarray(mean) if first else jnp.zeros(d),
        )
        links.append(jax.tree.map(lambda x: jnp.asarray(x, dtype), link))
    return links


def action_covariance(action_cov, betas, scale, dim: int) -> np.ndarray:
    """S_1 (d, d) in raw units from the ``action_cov`` choice (given in standardised units).

    Args:
        action_cov: "beta" (beta_1 I), a float s (s I) or a (d,) / (d, d) covariance.
        betas: (L,) schedule.   scale: (d,) standardisation scale.   dim: d.
    """
    if isinstance(action_cov, str):
        if action_cov == "beta":
            s1 = betas[0] * np.eye(dim)
        elif action_cov == "betatilde":
            raise ValueError(
                "action_cov: betatilde_1 = 0 would make every action identical given psi_1 (a singular "
                "S_1); use 'beta' or a float (S_1 = s I in standardised units)"
            )
        else:
            raise ValueError(f"action_cov: expected 'beta', a float or an array, got {action_cov!r}")
    else:
        s1 = np.asarray(_checks.covariance("action_cov", np.asarray(action_cov, np.float64), dim), np.float64)
    return np.asarray(scale)[:, None] * s1 * np.asarray(scale)[None, :]


def build_prior(params: EpsNet, betas, mean, scale, variance="beta", action_cov=1.0, dtype=None) -> DiffusionPrior:
    """The DiffusionPrior of a trained epsilon-network (MATH.md section 5).

    Args:
        params: trained EpsNet.
        betas: (L,) schedule.   mean, scale: (d,) standardisation of the training data.
        variance: "beta" or "betatilde" for S_2..S_L.   action_cov: the S_1 choice (module doc).
    """
    dtype = dtype or jnp.result_type(float)
    betas = np.asarray(betas, np.float64)
    dim = params.w_x.shape[1]
    links = ddpm_links(params, betas, mean, scale, dtype)
    sig2 = level_variances(betas, variance)
    covs = np.concatenate([sig2[1:, None, None] * np.eye(dim), np.eye(dim)[None]])  # S_2..S_L, S_{L+1} = I
    cov1 = action_covariance(action_cov, betas, scale, dim)
    return DiffusionPrior(links[0], _stack(links[1:]), jnp.asarray(cov1, dtype), jnp.asarray(covs, dtype))


# ------------------------------------------------------------------------------- training


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

    def plot_losses(self, path=None, ax=None, window: int = 50):
        """Plot the loss curve (raw and a moving average); save to ``path`` if given. Returns the Axes."""
        return plot_loss_curve(self.losses, path=path, ax=ax, window=window)


def plot_loss_curve(losses, path=None, ax=None, window: int = 50):
    import matplotlib

    if ax is None and path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

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
    samples,
    num_levels: int = 40,
    schedule="cosine",
    hidden: int = 64,
    steps: int = 5000,
    key=None,
    variance: str = "beta",
    action_cov=1.0,
    learning_rate: float = 1e-3,
    batch_size: int | None = None,
    max_beta: float = 0.5,
    progress: bool = True,
    dtype=None,
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
        action_cov: S_1 in standardised units: a float s (s I), "beta" (beta_1 I) or an array.
        learning_rate: Adam learning rate (the paper: 1e-3).
        batch_size: default min(2048, N) (the paper).
        max_beta: clip for named schedules.
        progress: show a tqdm bar.
        dtype: dtype of the prior's arrays (default: JAX's default float).

    Returns:
        TrainedPrior(prior, losses (steps,), params, metadata).

    Example:
        >>> from sklearn.datasets import make_swiss_roll
        >>> x = make_swiss_roll(2000, noise=0.5, random_state=0)[0][:, [0, 2]]
        >>> trained = train_diffusion_prior(x, num_levels=10, steps=200, progress=False)
        >>> trained.prior.num_levels, trained.prior.dim, trained.losses.shape
        (10, 2, (200,))
    """
    from tqdm.auto import tqdm

    from dts_ppl import __version__

    x = np.asarray(_checks.as_array("samples", samples, ndim=2), np.float64)
    _checks.check_finite("samples", x)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"samples: expected at least 2 samples (rows), got {n}")
    for name, v in (("hidden", hidden), ("steps", steps)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate: expected a positive number, got {learning_rate}")
    batch_size = min(2048, n) if batch_size is None else int(batch_size)
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size: expected 1..N = {n}, got {batch_size}")
    betas = noise_schedule(schedule, num_levels, max_beta)
    level_variances(betas, variance)  # validates `variance`
    mean, scale = x.mean(0), x.std(0)
    if np.any(scale <= 0):
        raise ValueError(f"samples: coordinate {int(np.argmin(scale))} is constant; cannot standardise")
    action_covariance(action_cov, betas, scale, d)  # validate before training
    key = jax.random.PRNGKey(0) if key is None else key
    k_init, k_train = jax.random.split(key)

    _, abar, _ = _schedule_arrays(betas)
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
    prior = build_prior(params, betas, mean, scale, variance, action_cov, dtype)
    metadata = dict(
        kind="ddpm",
        package_version=__version__,
        num_levels=int(len(betas)),
        dim=int(d),
        schedule=schedule if isinstance(schedule, str) else "custom",
        betas=betas.tolist(),
        max_beta=float(max_beta),
        variance=variance,
        action_cov=action_cov if isinstance(action_cov, str | float | int) else np.asarray(action_cov).tolist(),
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
    return TrainedPrior(prior, losses, params, metadata)
