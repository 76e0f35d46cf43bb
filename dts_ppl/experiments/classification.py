"""Classification data sets as contextual bandits: contexts are features, actions are classes.

The supervised-to-bandit reduction (as in the deep-Bayesian-bandit "Showdown", Riquelme et al.
2018): each round shows one example's features x; the agent picks a class a and receives reward
1 if a is the example's class, else 0 (:func:`dts_ppl.bandits.envs.table_environment`). The
pseudo-regret of a round is 1 minus that reward's mean, so the cumulative regret counts mistakes.

Data sets ship inside scikit-learn (digits, wine, breast cancer, iris): nothing is downloaded.
Features: standardised on the split's prior half, projected on their first ``dim - 1`` principal
components when there are more, and a constant 1 (so every theta_a has an intercept).

**The prior, learned from data, and the same for every agent.** Each run's split holds out
``prior_fraction`` of the examples (stratified by class); on them every (example, class) pair is
a logged reward (full information: the held-out labels give every action's reward). The prior is
the one-level linear chain theta_a = psi + e_a, psi ~ N(0, s_2^2 I), e_a ~ N(0, s_1^2 I): classes
share a common linear score and differ by their own part. Its scales s_1, s_2 and the reward
noise sigma are fitted by empirical Bayes on the held-out rewards
(:func:`dts_ppl.core.empirical_bayes.fit_hyperparameters`, the chain's exact Gaussian evidence).
dTS runs on that chain; LinTS and LinUCB get its marginal N(0, (s_1^2 + s_2^2) I) per action and
the same sigma; "LinTS (N(0, I))" is LinTS with the uninformed prior and sigma = 1. The bandit
rounds draw examples from the other part of the split.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import agents as ag
from dts_ppl.agents.posterior_policy import posterior_policy
from dts_ppl.bandits.envs import Environment, table_environment
from dts_ppl.core import checks as _checks
from dts_ppl.core.empirical_bayes import fit_hyperparameters
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.data.digits import HAVE_SKLEARN

__all__ = ["DATASETS", "ClassificationConfig", "CLASSIFICATION", "classification_setup", "classification_builder"]

#: data set name -> scikit-learn loader
DATASETS = {
    "digits": "load_digits",
    "wine": "load_wine",
    "breast-cancer": "load_breast_cancer",
    "iris": "load_iris",
}


class ClassificationConfig(NamedTuple):
    """The suite's settings: feature dimension (intercept included), held-out fraction, rounds, runs."""

    dim: int = 8
    prior_fraction: float = 0.3
    rounds: int = 1000
    runs: int = 20
    eb_steps: int = 100


CLASSIFICATION = ClassificationConfig()


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's data set ``name`` (a key of :data:`DATASETS`): features (N, p) float64, labels (N,) in 0..K-1."""
    if name not in DATASETS:
        raise ValueError(f"dataset: expected one of {sorted(DATASETS)}, got {name!r}")
    if not HAVE_SKLEARN:
        raise ValueError("dataset: the classification suite needs scikit-learn; `pip install dts_ppl[datasets]`")
    data = getattr(importlib.import_module("sklearn.datasets"), DATASETS[name])()
    labels = np.unique(np.asarray(data.target), return_inverse=True)[1]
    return np.asarray(data.data, np.float64), labels.astype(np.int64)


def split_features(features, labels, key, dim: int, prior_fraction: float):
    """A stratified split and its features: (X_prior, y_prior, X_bandit, y_bandit), X with dim columns (last = 1)."""
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    prior_rows = []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        prior_rows.extend(rows[: max(1, int(round(prior_fraction * rows.size)))])
    is_prior = np.zeros(labels.size, bool)
    is_prior[prior_rows] = True
    mean = features[is_prior].mean(0)
    sd = features[is_prior].std(0)
    Z = (features - mean) / np.where(sd > 0, sd, 1.0)
    if Z.shape[1] > dim - 1:  # principal components of the prior half
        _, _, vt = np.linalg.svd(Z[is_prior], full_matrices=False)
        Z = Z @ vt[: dim - 1].T
        Z = Z / Z[is_prior].std(0)
    X = np.concatenate([Z, np.ones((Z.shape[0], 1))], axis=1)
    return X[is_prior], labels[is_prior], X[~is_prior], labels[~is_prior]


def full_information(X, labels, num_classes: int):
    """Every (example, class) pair as a logged round: X (N K, d), A (N K,), y (N K,) = 1{class = label}."""
    n = X.shape[0]
    A = np.tile(np.arange(num_classes), n)
    return np.repeat(X, num_classes, axis=0), A, (A == np.repeat(labels, num_classes)).astype(np.float64)


def classification_setup(name: str, key, config: ClassificationConfig = CLASSIFICATION) -> dict:
    """One split of data set ``name``: the bandit environment, the empirical-Bayes prior and its fit.

    Returns:
        dict with env (Environment), prior (DiffusionPrior, the fitted one-level chain), gauss
        (GaussianPrior, its marginal), likelihood (Gaussian with the fitted sigma), fit (HyperFit),
        num_classes, and the split's sizes.
    """
    key = _checks.check_key(key)
    features, labels = load_dataset(name)
    K = int(labels.max()) + 1
    d = min(config.dim, features.shape[1] + 1)
    Xp, yp, Xb, yb = split_features(features, labels, key, d, config.prior_fraction)
    dtype = jnp.result_type(float)
    start = DiffusionPrior.linear([jnp.eye(d, dtype=dtype)], [0.5 * jnp.eye(d, dtype=dtype), jnp.eye(d, dtype=dtype)])
    Xf, Af, yf = full_information(Xp, yp, K)
    fit = fit_hyperparameters(
        start,
        Gaussian(0.5),
        Xf,
        Af,
        yf,
        fit=("noise_scale", "action_cov", "latent_cov"),
        num_actions=K,
        num_steps=config.eb_steps,
    )
    R = (np.arange(K)[None, :] == yb[:, None]).astype(np.float64)
    env = table_environment(Xb, R, f"{name} (K={K} classes, d={d}, {Xb.shape[0]} bandit examples)")
    marginal = fit.prior.cov1 + fit.prior.covs[0]
    gauss = ag.GaussianPrior(jnp.zeros(d, dtype), marginal)
    return dict(
        env=env,
        prior=fit.prior,
        gauss=gauss,
        likelihood=fit.likelihood,
        fit=fit,
        num_classes=K,
        num_prior_examples=int(Xp.shape[0]),
        num_bandit_examples=int(Xb.shape[0]),
    )


def classification_agents(setup: dict) -> dict:
    """Every agent of the suite, each given the same fitted prior and noise scale (but the uninformed LinTS)."""
    prior, gauss, lik, K = setup["prior"], setup["gauss"], setup["likelihood"], setup["num_classes"]
    d, dtype = gauss.mean.shape[0], gauss.mean.dtype
    flat = ag.GaussianPrior(jnp.zeros(d, dtype), jnp.eye(d, dtype=dtype))
    return {
        "dTS": ag.dts(prior, lik, K),
        "dTS Bayes-UCB": posterior_policy("dts", prior, lik, K, policy="bayes_ucb"),
        "LinTS": ag.lin_ts(gauss, lik, K),
        "LinUCB": ag.lin_ucb(gauss, lik, K),
        "LinTS (N(0, I))": ag.lin_ts(flat, Gaussian(1.0), K),
        "random": ag.random_policy(K),
    }


def classification_builder(name: str, config: ClassificationConfig = CLASSIFICATION):
    """Builder of the ``classify-<name>`` preset: one stratified split per ``key``."""

    def build(key, num_rounds) -> tuple[Environment, dict]:
        del num_rounds
        setup = classification_setup(name, key, config)
        return setup["env"], classification_agents(setup)

    return build
