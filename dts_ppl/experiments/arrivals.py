"""A catalogue that changes: items arrive, live a fixed time and leave; regret around each arrival.

One simulation for two data sources (:func:`simulate_arrivals`):

- ``movielens-arrivals`` (:func:`movielens_arrivals`, needs the user's MovieLens files): the
  ``movielens`` preset's factorisation, item split and DDPM prior
  (:func:`dts_ppl.experiments.realdata.movielens_setup`); its held-out items enter the catalogue in
  the order of their release dates (``u.item``; the year in the title for latest-small), ties in
  a fixed random order. Each run takes a random contiguous stretch of that stream. Contexts are
  the users' vectors, rewards the factorisation's prediction + N(0, noise^2). Item features for
  the nearest-item rule: the genre flags; side information: a ridge regression of the
  pre-training items' vectors on their genres (m its prediction, C its residual covariance).
- ``generated-arrivals`` (:func:`generated_arrivals`, CI-safe): the same process on generated
  data. Each run draws one chain psi of a linear diffusion prior and every item of its stream as
  theta_a ~ N(f_1(psi_1), S_1) (the items of one catalogue share their latent); contexts
  N(0, I_d / d); item features theta_a + N(0, s^2 I) with s^2 the mean variance of S_1, and the
  side information m = the features, C = s^2 I (exact).

The process (:class:`ArrivalConfig`): ``initial`` items are active at round 0; every ``interval``
rounds the oldest item retires and the next item of the stream arrives, so ``initial`` items are
always active and each lives ``initial * interval`` rounds. The agents (:func:`arrival_agents`)
run on :func:`dts_ppl.agents.catalogue.catalogue`:

- dTS: a newcomer starts from the chain's conditional prior given the latent posterior
  (retired items' evidence keeps informing the latents, the catalogue's default);
- LinTS-fresh: the Gaussian fitted to the prior's sample for every newcomer;
- LinTS-copy-nearest: a newcomer starts as a copy of the posterior of the active item nearest
  to it in feature space (cosine distance; mabwiser's ``warm_start`` rule);
- bank TS: uniform weights on the bank for every newcomer;
- dTS + side info (an extra row): dTS with the newcomer's side information as a Gaussian
  pseudo-observation.

Measured per newcomer (:func:`newcomer_regret`): the regret of its first ``pulls`` pulls,
sum over those rounds of (best active mean - its mean), and the regret of all rounds in the
``window`` rounds after it arrives (newcomers whose window would pass the horizon are left out).
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import agents as ag
from dts_ppl.agents.catalogue import Catalogue, catalogue
from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.sampling import sample_prior
from dts_ppl.data.movielens import load_movielens, movielens_dir
from dts_ppl.experiments import realdata
from dts_ppl.experiments.synthetic import random_linear_prior

__all__ = [
    "AGENTS",
    "ArrivalConfig",
    "ArrivalSetup",
    "arrival_agents",
    "generated_arrivals",
    "movielens_arrivals",
    "newcomer_regret",
    "release_order",
    "simulate_arrivals",
]

#: The compared agents, in table order (the last only where the source has side information).
AGENTS = ("dTS", "LinTS-fresh", "LinTS-copy-nearest", "bank TS", "dTS + side info")


class ArrivalConfig(NamedTuple):
    """The arrival process and what is measured.

    Attributes:
        initial: items active at round 0 (and at every round).   interval: rounds between arrivals.
        rounds: horizon n.   runs: independent runs.   pulls: a newcomer's first pulls measured.
        window: rounds after an arrival measured.   noise: reward sd.
    """

    initial: int = 20
    interval: int = 200
    rounds: int = 4000
    runs: int = 20
    pulls: int = 50
    window: int = 500
    noise: float = 1.0

    @property
    def arrivals(self) -> int:
        """Items that arrive after round 0."""
        return (self.rounds - 1) // self.interval

    @property
    def lifetime(self) -> int:
        """Rounds each item stays active."""
        return self.initial * self.interval


class ArrivalSetup(NamedTuple):
    """What the agents and the environment of one data source are made of.

    Attributes:
        name: a description.
        sample_items: ``key -> (theta (S, d), features (S, f))``, one run's stream of
            S = initial + arrivals items in arrival order.
        sample_context: ``key -> x (d,)``.
        prior: the DiffusionPrior dTS uses.   gauss: the GaussianPrior LinTS uses.
        bank: (N, d) bank TS's samples.   noise: reward sd.   info: plain facts for the record.
        side: ``features (f,) -> (m (d,), C (d, d))``, the side information of a newcomer for
            "dTS + side info" (:mod:`dts_ppl.agents.catalogue`), or None.
    """

    name: str
    sample_items: Any
    sample_context: Any
    prior: DiffusionPrior
    gauss: ag.GaussianPrior
    bank: jax.Array
    noise: float
    info: dict
    side: Any = None


def arrival_agents(setup: ArrivalSetup, cfg: ArrivalConfig) -> dict[str, Catalogue]:
    """The compared agents as catalogues of capacity ``cfg.initial`` (a retirement frees the slot an arrival takes)."""
    lik = Gaussian(setup.noise)
    makers = {
        "dTS": lambda K: ag.dts(setup.prior, lik, K),
        "LinTS-fresh": lambda K: ag.lin_ts(setup.gauss, lik, K),
        "LinTS-copy-nearest": lambda K: ag.lin_ts(setup.gauss, lik, K),
        "bank TS": lambda K: ag.bank_ts(setup.bank, lik, K, warn_ess=0.0),
    }
    if setup.side is not None:
        makers["dTS + side info"] = makers["dTS"]
    return {name: catalogue(make, cfg.initial) for name, make in makers.items()}


def _nearest(features, target, alive):
    """The alive id whose features are nearest to ``target`` in cosine distance (ties: the smallest id)."""
    unit = features / jnp.maximum(jnp.linalg.norm(features, axis=-1, keepdims=True), 1e-12)
    sim = unit @ (target / jnp.maximum(jnp.linalg.norm(target), 1e-12))
    return jnp.argmax(jnp.where(alive, sim, -jnp.inf)).astype(jnp.int32)


def simulate_arrivals(
    key: jax.Array, cat: Catalogue, setup: ArrivalSetup, cfg: ArrivalConfig, copy: bool = False, side: bool = False
):
    """Run ``cfg.runs`` runs of the arrival process with one agent.

    Every run's items, contexts and reward noise come from ``key`` alone (so runs are paired
    across agents); the agent's draws from a key split off separately.

    Args:
        key: PRNG key.   cat: a Catalogue of capacity ``cfg.initial``.   setup: the data source.
        cfg: the process.   copy: start newcomers as a copy of the nearest alive item (LinTS-copy-nearest).
        side: give each newcomer its side information ``setup.side(features)`` ("dTS + side info").

    Returns:
        dict of numpy arrays: ``chosen`` (runs, rounds) ids, ``regret`` (runs, rounds) per-round
        regret, ``gaps`` (runs, rounds, S) best active mean minus each item's mean.
    """
    key = _checks.check_key(key)
    K0, A, T = cfg.initial, cfg.arrivals, cfg.rounds

    def one_run(run_key):
        k_items, k_env, k_agent = jax.random.split(run_key, 3)
        theta, feats = setup.sample_items(k_items)
        ids = jnp.arange(K0 + A)

        def arrive(state, j):
            state = cat.retire_actions(state, j[None])
            if copy:
                alive = (ids > j) & (ids < K0 + j)
                src = _nearest(feats, feats[K0 + j], alive)
                return cat.add_actions(state, 1, copy_from=src[None])[0]
            if side:
                m, C = setup.side(feats[K0 + j])
                return cat.add_actions(state, 1, prior_mean=m[None], prior_cov=C)[0]
            return cat.add_actions(state, 1)[0]

        def body(state, t):
            k_x, k_y = jax.random.split(jax.random.fold_in(k_env, t))
            j = t // cfg.interval - 1  # the arrival at this round (when t is a multiple of interval)
            is_arrival = (t > 0) & (t % cfg.interval == 0) & (j < A)
            state = jax.lax.cond(is_arrival, arrive, lambda s, j: s, state, j)
            n_t = jnp.minimum(t // cfg.interval, A)
            alive = (ids >= n_t) & (ids < n_t + K0)
            x = setup.sample_context(k_x)
            mu = theta @ x
            best = jnp.max(jnp.where(alive, mu, -jnp.inf))
            a, _ = cat.act(jax.random.fold_in(k_agent, t), state, x)
            y = mu[a] + cfg.noise * jax.random.normal(k_y, (), mu.dtype)
            state = cat.update(state, x, a, y)
            return state, (a, best - mu[a], jnp.where(alive, best - mu, jnp.nan))

        _, (chosen, regret, gaps) = jax.lax.scan(body, cat.init(), jnp.arange(T))
        return chosen, regret, gaps

    keys = jax.random.split(key, cfg.runs)
    chosen, regret, gaps = jax.jit(jax.vmap(one_run))(keys)
    return {"chosen": np.asarray(chosen), "regret": np.asarray(regret), "gaps": np.asarray(gaps)}


def newcomer_regret(sim: dict, cfg: ArrivalConfig) -> dict:
    """Per run, the mean over newcomers of (a) the regret of their first ``cfg.pulls`` pulls and
    (b) the regret in the ``cfg.window`` rounds after their arrival; plus their mean pull counts.

    Returns:
        dict of (runs,) arrays: ``pulls_regret``, ``window_regret``, ``pulls`` (first-pull
        counts reached, at most ``cfg.pulls``), and ``total_regret`` (the run's cumulative regret).
    """
    chosen, regret, gaps = sim["chosen"], sim["regret"], sim["gaps"]
    runs = chosen.shape[0]
    K0, A, T = cfg.initial, cfg.arrivals, cfg.rounds
    pulls_regret, window_regret, pulls = np.zeros(runs), np.zeros(runs), np.zeros(runs)
    for r in range(runs):
        pr, wr, pc = [], [], []
        for j in range(A):
            start, item = cfg.interval * (j + 1), K0 + j
            rounds = np.flatnonzero(chosen[r, start:] == item)[: cfg.pulls] + start
            pr.append(float(np.sum(gaps[r, rounds, item])))
            pc.append(rounds.size)
            if start + cfg.window <= T:
                wr.append(float(np.sum(regret[r, start : start + cfg.window])))
        pulls_regret[r], window_regret[r], pulls[r] = np.mean(pr), np.mean(wr), np.mean(pc)
    return dict(pulls_regret=pulls_regret, window_regret=window_regret, pulls=pulls, total_regret=regret.sum(axis=1))


# ------------------------------------------------------------------------------ data sources


def generated_arrivals(cfg: ArrivalConfig, dim: int = 5, bank_size: int = 2000, seed: int = 0) -> ArrivalSetup:
    """The CI-safe twin: a linear diffusion prior (d = ``dim``, L = 2), one chain per run's catalogue."""
    key = jax.random.PRNGKey(seed)
    k_prior, k_bank = jax.random.split(key)
    prior = random_linear_prior(k_prior, dim, (dim, dim))
    num_items = cfg.initial + cfg.arrivals
    feature_sd = float(np.sqrt(np.mean(np.diag(np.asarray(prior.cov1)))))

    def sample_items(k):
        k_theta, k_feat = jax.random.split(k)
        theta = sample_prior(k_theta, prior, 1, num_items)[1][0]
        return theta, theta + feature_sd * jax.random.normal(k_feat, theta.shape, theta.dtype)

    def sample_context(k):
        return jax.random.normal(k, (dim,)) / np.sqrt(dim)

    bank = sample_prior(k_bank, prior, bank_size)[1][:, 0]  # one theta per independent chain
    noise_cov = feature_sd**2 * jnp.eye(dim)

    def side(features):  # the features are theta + N(0, s^2 I): the pseudo-observation is exact
        return features, noise_cov

    info = dict(dim=dim, bank_size=bank_size, seed=seed, feature_sd=feature_sd, num_levels=2)
    return ArrivalSetup(
        f"generated arrivals (linear diffusion prior, d={dim}, L=2)",
        sample_items,
        sample_context,
        prior,
        ag.theta_marginal(prior),
        bank,
        cfg.noise,
        info,
        side,
    )


def release_info(data_dir, item_ids) -> tuple[np.ndarray, np.ndarray]:
    """Release dates (as day ordinals; NaN when unknown) and genre flags of MovieLens items.

    100K: the ``u.item`` release date (``01-Jan-1995``) and its 19 genre flags; latest-small: the
    year in the title (``Toy Story (1995)``, taken as 1 July) and the ``genres`` field.

    Args:
        data_dir: the MovieLens directory.   item_ids: (I,) original movie ids.
    Returns:
        (dates (I,) float, genres (I, G) float 0/1).
    """
    path = Path(data_dir)
    ids = [int(i) for i in np.asarray(item_ids)]
    dates, genres = {}, {}
    if (path / "u.item").is_file():
        with open(path / "u.item", encoding="latin-1") as f:
            for line in f:
                parts = line.rstrip("\n").split("|")
                if len(parts) < 6:
                    continue
                try:
                    d = datetime.strptime(parts[2], "%d-%b-%Y").toordinal() if parts[2] else np.nan
                except ValueError:
                    d = np.nan
                dates[int(parts[0])] = d
                genres[int(parts[0])] = [float(v) for v in parts[-19:]]
        width = 19
    elif (path / "movies.csv").is_file():
        names: dict[str, int] = {}
        with open(path / "movies.csv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            for g in row["genres"].split("|"):
                names.setdefault(g, len(names))
        for row in rows:
            m = re.search(r"\((\d{4})\)\s*$", row["title"].strip())
            dates[int(row["movieId"])] = datetime(int(m.group(1)), 7, 1).toordinal() if m else np.nan
            flags = np.zeros(len(names))
            flags[[names[g] for g in row["genres"].split("|")]] = 1.0
            genres[int(row["movieId"])] = flags.tolist()
        width = len(names)
    else:
        raise ValueError(f"data_dir: {str(path)!r} has neither u.item (100K) nor movies.csv (latest-small)")
    d = np.array([dates.get(i, np.nan) for i in ids], float)
    g = np.array([genres.get(i, [0.0] * width) for i in ids], float)
    return d, g


def release_order(dates: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices sorting items by release date; ties (and unknown dates, placed last) in a fixed random order."""
    tiebreak = np.random.RandomState(seed).permutation(dates.shape[0])
    key = np.where(np.isnan(dates), np.inf, dates)
    return np.lexsort((tiebreak, key))


def movielens_arrivals(cfg: ArrivalConfig, data_dir=None, progress: bool = False) -> ArrivalSetup:
    """The MovieLens arrival process from the user's files (see the module docstring)."""
    s = realdata.movielens_setup(data_dir, progress=progress)
    fac = s["factorisation"]
    ratings_dir = data_dir
    # the held-out items are the rows of s["heldout"]; find their movie ids through the same split
    ratings = load_movielens(ratings_dir)
    mcfg = realdata.MOVIELENS
    counts = np.bincount(ratings.items, minlength=ratings.num_items)
    eligible = np.flatnonzero(counts >= mcfg.min_ratings)
    perm = np.random.RandomState(mcfg.seed).permutation(eligible)
    cut = int(round(mcfg.pretrain_share * eligible.size))
    pre, held = perm[:cut], perm[cut:]
    if not np.allclose(fac.item_vectors[held], s["heldout"]):
        raise RuntimeError("movielens_arrivals: the held-out split differs from the movielens preset's")
    dates, genres = release_info(movielens_dir(ratings_dir), ratings.item_ids[held])
    order = release_order(dates, mcfg.seed)
    stream = jnp.asarray(fac.item_vectors[held][order], jnp.result_type(float))
    feats = jnp.asarray(genres[order], stream.dtype)
    users = jnp.asarray(fac.user_vectors, stream.dtype)
    S = cfg.initial + cfg.arrivals
    if stream.shape[0] < S:
        raise ValueError(f"cfg: the stream has {stream.shape[0]} items, the process needs {S}")

    def sample_items(k):
        start = jax.random.randint(k, (), 0, stream.shape[0] - S + 1)
        return jax.lax.dynamic_slice_in_dim(stream, start, S), jax.lax.dynamic_slice_in_dim(feats, start, S)

    def sample_context(k):
        return users[jax.random.randint(k, (), 0, users.shape[0])]

    # side information: a ridge regression (ridge 1) of the pre-training items' vectors on their
    # genre flags; its prediction is m and its residual covariance C
    _, pre_genres = release_info(movielens_dir(ratings_dir), ratings.item_ids[pre])
    G = np.hstack([pre_genres, np.ones((pre.size, 1))])
    V = np.asarray(fac.item_vectors[pre], np.float64)
    coef = np.linalg.solve(G.T @ G + np.eye(G.shape[1]), G.T @ V)
    resid = V - G @ coef
    coef_j = jnp.asarray(coef, stream.dtype)
    resid_cov = jnp.asarray(np.cov(resid.T), stream.dtype)

    def side(features):
        return jnp.append(features, 1.0) @ coef_j, resid_cov

    dated = dates[order]
    info = dict(
        format=ratings.format,
        stream_items=int(stream.shape[0]),
        unknown_dates=int(np.isnan(dated).sum()),
        first_release=datetime.fromordinal(int(np.nanmin(dated))).date().isoformat(),
        last_release=datetime.fromordinal(int(np.nanmax(dated))).date().isoformat(),
        prior_levels=int(s["prior"].num_levels),
    )
    return ArrivalSetup(
        f"MovieLens ({ratings.format}) arrivals: {stream.shape[0]} held-out items in release order",
        sample_items,
        sample_context,
        s["prior"],
        s["gauss"],
        s["bank"],
        cfg.noise,
        info,
        side,
    )
