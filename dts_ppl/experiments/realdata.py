"""Real-data and shared-parameter presets, and the prior-knowledge ceiling.

Every preset compares dTS with a DDPM prior pre-trained on a sample of theta against

- LinTS and LinUCB given the Gaussian fitted to the same sample (``GaussianPrior.fit``),
- HierTS (per-action presets): HierTS-1 on a one-level Gaussian hierarchy with dTS's S_1 (:func:`gaussian_hierarchy`),
- bank TS: the exact posterior of an empirical prior (:func:`dts_ppl.agents.bank_ts`) -- many
  true-prior draws where the true prior is known (ring, roll: the ceiling of prior knowledge),
  the pre-training sample on real data,
- random: uniformly random actions.

Presets (``dts-ppl bench regret --preset NAME``):

- ``ring-shared``: one theta per run from an 8-cluster ring (radius 2, sd 0.15); K = 20 action
  features U[-1, 1]^2 per round; rewards N(x_a^T theta, 1).
- ``roll-shared``: the same with theta a standardised Swiss-roll point; dTS uses the shipped
  Swiss-roll prior (10^4 samples, L = 40) with S_1 reset by the shared rule below.
- ``digits-multitask``: scikit-learn's digits (:mod:`dts_ppl.data.digits`): theta is a ridge
  fit of one class's indicator on a small subset of images, actions are K = 20 embedded images
  per round, rewards N(x_a^T theta, 0.5^2). ``digits-multitask-bernoulli``: logistic fits and
  Bernoulli rewards.
- ``movielens`` (needs ``--data-dir`` or $DTS_MOVIELENS_DIR): ALS item vectors (rank 5) of
  items with >= 20 ratings, a random 70% pre-trains the prior, the bandit draws K = 100 of the
  other 30% per run; contexts are the users' vectors; rewards = the factorisation's centred
  prediction + N(0, 1).
- ``movielens-users`` (cold start; the same files): one shared theta per run = a held-out user's
  ALS vector (a random 30% of the users), the prior learned from the other users' vectors, K = 30
  films per round drawn from the items with >= 20 ratings, their vectors as action features;
  rewards u^T v_a + N(0, 1). ``movielens-users-generated``: the same bandit on generated ratings
  (:func:`generated_ratings`: clustered users, Gaussian items), which needs no files (CI-safe).

Every preset also runs the optimistic policies of :mod:`dts_ppl.agents.posterior_policy` on the
same posteriors ("dTS Bayes-UCB", "dTS UCB", "LinTS Bayes-UCB", and with HierTS "HierTS Bayes-UCB",
"HierTS UCB"; LinUCB is UCB on LinTS's posterior).

S_1 (``action_cov`` of :func:`dts_ppl.train_diffusion_prior`), an explicit rule per kind:
shared parameter: "beta" (the DDPM's own beta_1: one parameter, nothing to spread over
actions); per-action parameters: half the standardised sample covariance, so the shared
latent carries the other half of the items' spread (and HierTS gets the same split).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import agents as ag
from dts_ppl.agents.posterior_policy import posterior_policy
from dts_ppl.bandits.envs import Environment, pool_environment, uniform_contexts
from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import Bernoulli, Gaussian
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.sampling import sample_prior
from dts_ppl.data import digits as digits_data
from dts_ppl.data.factorisation import als
from dts_ppl.data.movielens import ENV_VAR, Ratings, load_movielens
from dts_ppl.ddpm import train_diffusion_prior
from dts_ppl.ddpm.calibrate import with_action_cov
from dts_ppl.experiments import swissroll
from dts_ppl.io.prior_files import load_prior, save_prior


class DDPMTraining(NamedTuple):
    """DDPM training of every preset's prior (:func:`dts_ppl.train_diffusion_prior` arguments)."""

    num_levels: int = 40
    schedule: str = "cosine"
    hidden: int = 128
    steps: int = 6000
    variance: str = "beta"


class RingConfig(NamedTuple):
    """The 8-cluster ring: cluster centres on a circle of ``radius``, each an isotropic Gaussian (sd)."""

    num_clusters: int = 8
    radius: float = 2.0
    sd: float = 0.15


class SharedConfig(NamedTuple):
    """Shared-parameter bandits: K features per round, Gaussian noise sd, run size, pre-training and bank sizes."""

    num_actions: int = 20
    rounds: int = 300
    runs: int = 40
    noise: float = 1.0
    pretrain: int = 5000
    bank: int = 20_000


class DigitsConfig(NamedTuple):
    """The digits multi-task bandit: embedding dimension, images per round, run size, noise sd."""

    dim: int = 5
    num_actions: int = 20
    rounds: int = 500
    runs: int = 20
    noise: float = 0.5


class MovieLensConfig(NamedTuple):
    """The MovieLens preset: ALS rank and ridge, item filter and split, bandit and run size, noise sd, seed."""

    rank: int = 5
    ridge: float = 5.0
    min_ratings: int = 20
    pretrain_share: float = 0.7
    num_actions: int = 100
    rounds: int = 3000
    runs: int = 20
    noise: float = 1.0
    seed: int = 0


class MovieLensUsersConfig(NamedTuple):
    """The cold-start MovieLens preset: ALS as :class:`MovieLensConfig`, the user split, films per round, run size."""

    pretrain_share: float = 0.7
    num_actions: int = 30
    rounds: int = 300
    runs: int = 40
    noise: float = 1.0
    seed: int = 0


class GeneratedRatingsConfig(NamedTuple):
    """Generated ratings for the CI-safe twin: users from a ring of clusters in the rank-d space, Gaussian items."""

    num_users: int = 400
    num_items: int = 150
    rank: int = 5
    num_clusters: int = 4
    density: float = 0.3
    noise: float = 0.5
    seed: int = 0


#: DDPM training of every preset's prior (cached under swissroll.cache_dir()).
TRAINING = DDPMTraining()
RING = RingConfig()
SHARED = SharedConfig()
DIGITS = DigitsConfig()
MOVIELENS = MovieLensConfig()
MOVIELENS_USERS = MovieLensUsersConfig()
GENERATED = GeneratedRatingsConfig()


# ---------------------------------------------------------------------------------- helpers


def fitted_gaussian(samples, jitter: float = 1e-9) -> ag.GaussianPrior:
    """Deprecated: ``agents.GaussianPrior.fit(samples, jitter)``, the Gaussian fit of samples (N, d)."""
    warnings.warn(
        "realdata.fitted_gaussian is deprecated; use dts_ppl.agents.GaussianPrior.fit", DeprecationWarning, stacklevel=2
    )
    return ag.GaussianPrior.fit(samples, jitter)


def gaussian_hierarchy(gauss: ag.GaussianPrior, own_cov) -> DiffusionPrior:
    """HierTS's prior for i.i.d. per-action parameters with Gaussian fit N(m, C), as a DiffusionPrior.

    The one-level linear chain theta_a = m + h + e_a, e_a ~ N(0, own_cov), h ~ N(0, C - own_cov)
    (C - own_cov's eigenvalues floored at 1e-6 tr C / d), through :func:`dts_ppl.agents.hierarchical_prior`
    (HierTS-1, no jitter: the floor already keeps h's covariance positive definite).

    Args:
        gauss: the Gaussian fit, mean (d,) and cov C (d, d).
        own_cov: (d, d) per-action covariance (dTS's S_1).
    Returns:
        DiffusionPrior with one level: S_1 = own_cov, S_2 = the floored C - own_cov, offset m.
    """
    C = np.asarray(gauss.cov, np.float64)
    own = np.asarray(own_cov, np.float64)
    evals, evecs = np.linalg.eigh(C - own)
    floor = 1e-6 * np.trace(C) / C.shape[0]
    top = (evecs * np.maximum(evals, floor)) @ evecs.T
    d, dtype = C.shape[0], gauss.mean.dtype
    chain = DiffusionPrior.linear(
        [jnp.eye(d, dtype=dtype)], [jnp.asarray(own, dtype), jnp.asarray(0.5 * (top + top.T), dtype)], [gauss.mean]
    )
    return ag.hierarchical_prior(chain, jitter=0.0)


def standardised_cov(samples) -> np.ndarray:
    """The samples' covariance in the standardised units the DDPM trains in (their correlation matrix), (d, d)."""
    return np.corrcoef(np.asarray(samples, np.float64).T)


def trained_prior(tag: str, samples, action_cov, seed: int = 0, progress: bool = True, **overrides):
    """DDPM prior trained on ``samples`` (N, d) with :data:`TRAINING` (+ overrides), cached by content.

    Returns:
        (prior, metadata).
    """
    x = np.asarray(samples, np.float64)
    cfg = dict(TRAINING._asdict(), **overrides)
    key_cov = action_cov if isinstance(action_cov, str | float | int) else np.round(np.asarray(action_cov), 12).tolist()
    digest = hashlib.sha1(x.tobytes() + json.dumps([cfg, key_cov, seed], sort_keys=True).encode()).hexdigest()[:12]
    path = swissroll.cache_dir() / f"{tag}-{digest}.npz"
    if path.is_file():
        return load_prior(path)
    trained = train_diffusion_prior(x, key=jax.random.PRNGKey(seed), action_cov=action_cov, progress=progress, **cfg)
    meta = dict(trained.metadata, data=tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_prior(path, trained.prior, meta)
    return trained.prior, meta


def prior_samples(key, prior: DiffusionPrior, num_samples: int) -> jax.Array:
    """Deprecated: ``sample_prior(key, prior, num_samples)[1][:, 0]``, draws (num_samples, d) of one theta."""
    key = _checks.check_key(key)
    warnings.warn(
        "realdata.prior_samples is deprecated; use dts_ppl.sample_prior(key, prior, n)[1][:, 0]",
        DeprecationWarning,
        stacklevel=2,
    )
    return sample_prior(key, prior, num_samples)[1][:, 0]


def _agents(prior, gauss, bank, lik, K, shared, hier=None, history=5000):
    kw = dict(shared=shared, history=history)
    out = {
        "dTS": ag.dts(prior, lik, K, **kw),
        "LinTS": ag.lin_ts(gauss, lik, K, **kw),
        "LinUCB": ag.lin_ucb(gauss, lik, K, **kw),
    }
    if hier is not None:
        out["HierTS"] = ag.dts(hier, lik, K, **kw)
    out["bank TS"] = ag.bank_ts(bank, lik, K, shared=shared)
    out["random"] = ag.random_policy(K)
    out["dTS Bayes-UCB"] = posterior_policy("dts", prior, lik, K, "bayes_ucb", **kw)
    out["dTS UCB"] = posterior_policy("dts", prior, lik, K, "ucb", **kw)
    out["LinTS Bayes-UCB"] = posterior_policy("lin_ts", gauss, lik, K, "bayes_ucb", **kw)
    if hier is not None:
        out["HierTS Bayes-UCB"] = posterior_policy("dts", hier, lik, K, "bayes_ucb", **kw)
        out["HierTS UCB"] = posterior_policy("dts", hier, lik, K, "ucb", **kw)
    return out


# --------------------------------------------------------------------------- ring and roll


def sample_ring(key, num_samples: int) -> jax.Array:
    """(num_samples, 2) draws of the 8-cluster ring: centre radius (cos, sin)(2 pi c / 8), c uniform, + sd N(0, I)."""
    key = _checks.check_key(key)
    k_c, k_n = jax.random.split(key)
    dtype = jnp.result_type(float)
    c = jax.random.randint(k_c, (num_samples,), 0, RING.num_clusters)
    angle = 2 * jnp.pi * c.astype(dtype) / RING.num_clusters
    centre = RING.radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
    return centre + RING.sd * jax.random.normal(k_n, (num_samples, 2), dtype)


def shared_environment(sample_one, name: str) -> Environment:
    """One theta (2,) per run from ``sample_one(key) -> (1, 2)``; K = 20 features U[-1, 1]^2 per round."""
    K = SHARED.num_actions
    return Environment(lambda key: sample_one(key)[0], uniform_contexts(2, K), Gaussian(SHARED.noise), K, 2, True, name)


def ring_setup(progress: bool = True) -> dict:
    """Everything the ring-shared preset uses: env, prior (+ meta), Gaussian fit, bank, pre-training sample."""
    pretrain = np.asarray(sample_ring(jax.random.PRNGKey(101), SHARED.pretrain), np.float64)
    bank = sample_ring(jax.random.PRNGKey(202), SHARED.bank)
    prior, meta = trained_prior("ring", pretrain, "beta", progress=progress)
    env = shared_environment(lambda k: sample_ring(k, 1), "8-cluster ring (shared theta), K=20 features U[-1,1]^2")
    return dict(env=env, prior=prior, meta=meta, gauss=ag.GaussianPrior.fit(pretrain), bank=bank, pretrain=pretrain)


def roll_setup(progress: bool = True) -> dict:
    """The roll-shared preset: the shipped Swiss-roll prior (N = 10^4, L = 40), S_1 = "beta"."""
    prior, meta = swissroll.swiss_roll_prior(10_000, 40, progress=progress)
    prior, meta = with_action_cov(prior, meta, "beta")
    pretrain = swissroll.swiss_roll(10_000, seed=0)
    bank = jnp.asarray(swissroll.swiss_roll(SHARED.bank, seed=1), jnp.result_type(float))
    env = shared_environment(lambda k: swissroll.sample_swiss_roll(k, 1), "Swiss roll (shared theta), K=20")
    return dict(env=env, prior=prior, meta=meta, gauss=ag.GaussianPrior.fit(pretrain), bank=bank, pretrain=pretrain)


def shared_builder(setup):
    """Builder of a shared-parameter preset from its ``setup()`` (ring or roll)."""

    def build(key, num_rounds):
        del key, num_rounds
        s = setup()
        lik = Gaussian(SHARED.noise)
        return s["env"], _agents(s["prior"], s["gauss"], s["bank"], lik, SHARED.num_actions, True)

    return build


# ---------------------------------------------------------------------------------- digits


def digits_setup(kind: str = "linear", progress: bool = True) -> dict:
    """The digits multi-task preset: tasks, env, prior trained on the pre-training thetas, fit, bank."""
    tasks = digits_data.digits_tasks(dim=DIGITS.dim, kind=kind)
    lik = Gaussian(DIGITS.noise) if kind == "linear" else Bernoulli()
    name = f"digits multi-task ({kind}), K={DIGITS.num_actions} images per round"
    env = pool_environment(tasks.bandit_thetas, tasks.features, DIGITS.num_actions, lik, shared=True, name=name)
    prior, meta = trained_prior(f"digits-{kind}", tasks.pretrain_thetas, "beta", progress=progress)
    return dict(
        env=env,
        prior=prior,
        meta=meta,
        gauss=ag.GaussianPrior.fit(tasks.pretrain_thetas),
        bank=jnp.asarray(tasks.pretrain_thetas, jnp.result_type(float)),
        pretrain=tasks.pretrain_thetas,
        heldout=tasks.bandit_thetas,
        likelihood=lik,
    )


def digits_builder(kind: str):
    """Builder of the digits preset: ``kind`` "linear" (Gaussian rewards) or "logistic" (Bernoulli)."""

    def build(key, num_rounds):
        del key
        s = digits_setup(kind)
        lik = s["likelihood"]
        if kind == "logistic":  # expand the GLM likelihood at the prior's scale, as the paper presets do
            lik = Bernoulli().regularised_for(s["gauss"].cov)
        return s["env"], _agents(s["prior"], s["gauss"], s["bank"], lik, DIGITS.num_actions, True, None, num_rounds)

    return build


# -------------------------------------------------------------------------------- MovieLens


def movielens_setup(data_dir=None, progress: bool = True) -> dict:
    """The MovieLens preset from the user's files: factorisation, item split, env, prior, fit, bank."""
    ratings = load_movielens(data_dir)
    cfg = MOVIELENS
    fac, eligible = factorise(ratings)
    perm = np.random.RandomState(cfg.seed).permutation(eligible)
    cut = int(round(cfg.pretrain_share * eligible.size))
    pre_items, bandit_items = perm[:cut], perm[cut:]
    pretrain = fac.item_vectors[pre_items].astype(np.float64)
    K = int(min(cfg.num_actions, bandit_items.size))
    name = f"MovieLens ({ratings.format}) ALS rank {cfg.rank}, K={K} of {bandit_items.size} held-out items"
    lik = Gaussian(cfg.noise)
    env = pool_environment(fac.item_vectors[bandit_items], fac.user_vectors, K, lik, name=name)
    own_std = 0.5 * standardised_cov(pretrain)
    prior, meta = trained_prior("movielens", pretrain, own_std, progress=progress)
    gauss = ag.GaussianPrior.fit(pretrain)
    return dict(
        env=env,
        prior=prior,
        meta=meta,
        gauss=gauss,
        hier=gaussian_hierarchy(gauss, prior.cov1),
        bank=jnp.asarray(pretrain, jnp.result_type(float)),
        pretrain=pretrain,
        heldout=fac.item_vectors[bandit_items],
        factorisation=fac,
        num_actions=K,
        likelihood=lik,
    )


def movielens_build(key, num_rounds):
    """Builder of the MovieLens preset (files from $DTS_MOVIELENS_DIR)."""
    key = _checks.check_key(key)
    del key, num_rounds
    s = movielens_setup(os.environ.get(ENV_VAR))
    return s["env"], _agents(s["prior"], s["gauss"], s["bank"], s["likelihood"], s["num_actions"], False, s["hier"])


def factorise(ratings: Ratings):
    """The MovieLens factorisation (ALS with :data:`MOVIELENS`'s rank, ridge, seed) and the items with enough ratings.

    Returns:
        (Factorisation, eligible item indices (n_eligible,)).
    """
    cfg = MOVIELENS
    fac = als(ratings.users, ratings.items, ratings.ratings, cfg.rank, cfg.ridge, seed=cfg.seed)
    counts = np.bincount(ratings.items, minlength=ratings.num_items)
    eligible = np.flatnonzero(counts >= cfg.min_ratings)
    if eligible.size < 4:
        raise ValueError(f"data_dir: only {eligible.size} items have >= {cfg.min_ratings} ratings; expected at least 4")
    return fac, eligible


def generated_ratings(cfg: GeneratedRatingsConfig | None = None) -> Ratings:
    """Ratings u^T v + N(0, noise^2) of a random ``density`` share of (user, item) pairs, with no files.

    Users: ``num_clusters`` clusters with centres 1.5 (cos, sin)(2 pi c / C) in the first two of the
    ``rank`` coordinates, sd 0.3 around them; items N(0, I_rank); every user and item has >= 1 rating.

    Returns:
        Ratings in the "generated" format (ids 0..U-1, 0..I-1, empty titles).
    """
    cfg = GENERATED if cfg is None else cfg
    rng = np.random.RandomState(cfg.seed)
    c = rng.randint(cfg.num_clusters, size=cfg.num_users)
    centres = np.zeros((cfg.num_clusters, cfg.rank))
    angle = 2 * np.pi * np.arange(cfg.num_clusters) / cfg.num_clusters
    centres[:, 0], centres[:, 1] = 1.5 * np.cos(angle), 1.5 * np.sin(angle)
    users = centres[c] + 0.3 * rng.normal(size=(cfg.num_users, cfg.rank))
    items = rng.normal(size=(cfg.num_items, cfg.rank))
    mask = rng.uniform(size=(cfg.num_users, cfg.num_items)) < cfg.density
    mask[np.arange(cfg.num_users), rng.randint(cfg.num_items, size=cfg.num_users)] = True
    mask[rng.randint(cfg.num_users, size=cfg.num_items), np.arange(cfg.num_items)] = True
    u, i = np.nonzero(mask)
    r = np.einsum("nd,nd->n", users[u], items[i]) + cfg.noise * rng.normal(size=u.size)
    return Ratings(
        u, i, r.astype(np.float64), np.arange(cfg.num_users), np.arange(cfg.num_items), np.full(cfg.num_items, ""),
        "generated",
    )  # fmt: skip


def movielens_users_setup(data_dir=None, progress: bool = True, ratings: Ratings | None = None) -> dict:
    """The cold-start preset: a held-out user's vector is theta, the prior is learned from the other users.

    Args:
        data_dir: MovieLens files (as :func:`dts_ppl.data.movielens.load_movielens`), unless ``ratings``.
        progress: show the DDPM training's progress.   ratings: Ratings to use instead of files.
    Returns:
        dict with env, prior, meta, gauss, bank, pretrain, heldout, num_actions, likelihood.
    """
    ratings = load_movielens(data_dir) if ratings is None else ratings
    cfg = MOVIELENS_USERS
    fac, eligible = factorise(ratings)
    users = fac.user_vectors.astype(np.float64)
    perm = np.random.RandomState(cfg.seed).permutation(users.shape[0])
    cut = int(round(cfg.pretrain_share * users.shape[0]))
    pretrain, heldout = users[perm[:cut]], users[perm[cut:]]
    if cut < 2 or heldout.shape[0] < 1:
        raise ValueError(f"ratings: {users.shape[0]} users cannot be split into pre-training and held-out users")
    K = int(min(cfg.num_actions, eligible.size))
    lik = Gaussian(cfg.noise)
    name = f"MovieLens users ({ratings.format}) ALS rank {MOVIELENS.rank}, K={K} of {eligible.size} films per round"
    env = pool_environment(heldout, fac.item_vectors[eligible], K, lik, shared=True, name=name)
    prior, meta = trained_prior(f"movielens-users-{ratings.format}", pretrain, "beta", progress=progress)
    return dict(
        env=env,
        prior=prior,
        meta=meta,
        gauss=ag.GaussianPrior.fit(pretrain),
        bank=jnp.asarray(pretrain, jnp.result_type(float)),
        pretrain=pretrain,
        heldout=heldout,
        num_actions=K,
        likelihood=lik,
    )


def movielens_users_build(key, num_rounds):
    """Builder of the cold-start MovieLens preset (files from $DTS_MOVIELENS_DIR)."""
    key = _checks.check_key(key)
    del key, num_rounds
    s = movielens_users_setup(os.environ.get(ENV_VAR))
    return s["env"], _agents(s["prior"], s["gauss"], s["bank"], s["likelihood"], s["num_actions"], True)


def movielens_users_generated_build(key, num_rounds):
    """Builder of the cold-start preset's twin on :func:`generated_ratings` (no files)."""
    key = _checks.check_key(key)
    del key, num_rounds
    s = movielens_users_setup(ratings=generated_ratings())
    return s["env"], _agents(s["prior"], s["gauss"], s["bank"], s["likelihood"], s["num_actions"], True)


def presets() -> dict:
    """Deprecated: these presets, now declared in :mod:`dts_ppl.experiments.registry`."""
    registry = importlib.import_module("dts_ppl.experiments.registry")  # it imports this module
    warnings.warn("realdata.presets() is deprecated; use dts_ppl.experiments.registry", DeprecationWarning, 2)
    return {p.name: p for p in registry.realdata_presets()}
