"""Diffusion priors learned from samples: DDPM epsilon-prediction training (docs/math.md section 5).

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
  which is the right prior only when actions truly share one parameter. The default of
  :func:`~dts_ppl.train_diffusion_prior`, "marginal", calibrates S_1 so that the prior's theta
  marginal covariance matches the training data's (:mod:`dts_ppl.ddpm.calibrate`). Overrides:
  a float s gives S_1 = s I in standardised units (s = 1, the default before 0.2: each action
  may deviate from f_1(psi_1) by about the spread of the data, which doubles the marginal
  variance); "beta" gives beta_1 I; a (d,) or (d, d) array is taken in standardised units too.

The trained links are :class:`DDPMLink` NamedTuples (``__call__``, ``linearise``,
``is_linear``), stacked over levels 2..L like every other link, so the posterior, the NumPyro
model and guide and the agents use them unchanged. "identity" linearisation of a DDPM link is
the paper's rule applied in the standardised coordinates the network was trained in:
W = diag(out_scale), c = out_shift (that is W = I, c = 0 for levels >= 2, and the
de-standardisation for f_1).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.core import checks as _checks
from dts_ppl.core.deprecation import renamed_argument
from dts_ppl.core.links import _jacobian_linearisation
from dts_ppl.core.prior import DiffusionPrior, _stack
from dts_ppl.ddpm.network import EpsNet, mlp_forward, mlp_tail, step_embedding
from dts_ppl.ddpm.schedule import level_variances, schedule_arrays


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

    #: The paper's rule suits DDPM steps (near-identity maps): measured best (core.default_linearisation).
    default_linearisation = "identity"

    @property
    def is_linear(self) -> bool:
        return False

    def eps(self, x: jax.Array) -> jax.Array:
        return mlp_forward(self.w_x, self.b_in, self.w2, self.b2, self.w3, self.b3, x)

    def __call__(self, x: jax.Array) -> jax.Array:
        # x reaches the output through the first product too, as d extra columns [w_x^T | I]
        # (exact copies: x_j * 1 plus zeros): one consumer of x, so a chain's level is computed
        # once, not once for the product and again inside the next level's update
        hidden, d = self.w_x.shape
        both = x @ jnp.concatenate([self.w_x.T, jnp.eye(d, dtype=self.w_x.dtype)], 1)
        eps = mlp_tail(both[..., :hidden], self.b_in, self.w2, self.b2, self.w3, self.b3)
        return self.out_shift + self.out_scale * (self.x_coef * both[..., hidden:] - self.eps_coef * eps)

    def linearise(
        self, point: jax.Array, linearisation: str = "identity", *, method: str | None = None
    ) -> tuple[jax.Array, jax.Array]:
        linearisation = renamed_argument("method", method, "linearisation", linearisation, "identity")
        if linearisation == "identity":
            return jnp.diag(self.out_scale), self.out_shift
        return _jacobian_linearisation(self, point)


def ddpm_links(params: EpsNet, betas, mean, scale, dtype=None) -> list[DDPMLink]:
    """The L trained links f_1..f_L (f_1 de-standardises)."""
    dtype = dtype or jnp.result_type(float)
    betas = np.asarray(betas, np.float64)
    alphas, abar, _ = schedule_arrays(betas)
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
        elif action_cov == "marginal":
            raise ValueError(
                "action_cov: 'marginal' is computed from the training samples (train_diffusion_prior, "
                "dts_ppl.ddpm.calibrate_action_cov), not from the schedule; here give 'beta', a float or an array"
            )
        else:
            raise ValueError(f"action_cov: expected 'marginal', 'beta', a float or an array, got {action_cov!r}")
    else:
        s1 = np.asarray(_checks.covariance("action_cov", np.asarray(action_cov, np.float64), dim), np.float64)
    return np.asarray(scale)[:, None] * s1 * np.asarray(scale)[None, :]


def build_prior(params: EpsNet, betas, mean, scale, variance="beta", action_cov=1.0, dtype=None) -> DiffusionPrior:
    """The DiffusionPrior of a trained epsilon-network (docs/math.md section 5).

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
