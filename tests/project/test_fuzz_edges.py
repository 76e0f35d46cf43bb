"""Fuzz of the readers, helpers and keys: MovieLens files, als, GaussianPrior.fit, every public key argument.

Same bookkeeping as test_fuzz_api.py (tests/support/fuzz.py): each case is valid (often an edge
case) or invalid in one named argument, and must end as a clear ValueError naming that argument
or a valid, finite result. Bad MovieLens files are written per case to a temporary directory.
Discrete case lists are enumerated in full; the numeric ones are drawn by hypothesis
(``derandomize=True``: the same cases every run).
"""

import os
import tempfile
from pathlib import Path

import fuzz
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dts_ppl import DiffusionPrior
from dts_ppl.agents import GaussianPrior, lin_ts, policy
from dts_ppl.bandits.envs import sample_reward
from dts_ppl.core import inference as core
from dts_ppl.core.checks import covariance
from dts_ppl.core.sampling import sample_prior
from dts_ppl.data import als, load_movielens
from dts_ppl.data.factorisation import train_test_split
from dts_ppl.ddpm import train_diffusion_prior
from dts_ppl.ddpm.calibrate import calibrate_action_cov
from dts_ppl.ddpm.network import init_eps_net
from dts_ppl.experiments.paper_extra import paper_perturbation
from dts_ppl.experiments.regret import misspecified_prior
from dts_ppl.experiments.synthetic import paper_environment, random_linear_prior

FUZZ = settings(
    max_examples=int(os.environ.get("DTS_PPL_FUZZ_EXAMPLES", 25)),
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def _ok(outcome):
    assert outcome not in fuzz.BAD, f"{outcome}: {dict(fuzz.EXAMPLES)}"


# ------------------------------------------------------------------------------- MovieLens

BIG = 2**53
GOOD_ROWS = [("1", "10", "4"), ("2", "10", "3.5"), ("2", "20", "1")]

# (invalid argument or None, description, format, extra rows, distinct users expected when valid)
READER_CASES = (
    [
        (None, "valid", "100k", [], 2),
        (None, "valid", "latest-small", [], 2),
        (None, "ids 2**53 and 2**53 + 1", "100k", [(str(BIG), "10", "2"), (str(BIG + 1), "10", "3")], 4),
        (None, "ids 2**53 and 2**53 + 1", "latest-small", [(str(BIG), "10", "2"), (str(BIG + 1), "20", "3")], 4),
        (None, "ids beyond int64", "100k", [(str(2**64), "10", "2"), (str(2**64 + 1), "10", "3")], 4),
        (None, "rating 1e300", "latest-small", [("3", "20", "1e300")], 3),
        (None, "negative rating", "100k", [("3", "20", "-2")], 3),
    ]
    + [
        ("data_dir", f"rating {bad}", fmt, [("3", "20", bad)], None)
        for bad in ("nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e999", "x", "")
        for fmt in ("100k", "latest-small")
    ]
    + [
        ("data_dir", f"{what} id {bad!r}", fmt, [row], None)
        for what, bad, row in (
            ("user", "1.5", ("1.5", "10", "3")),
            ("user", "1e3", ("1e3", "10", "3")),
            ("user", "nan", ("nan", "10", "3")),
            ("item", "", ("3", "", "3")),
            ("item", "inf", ("3", "inf", "3")),
        )
        for fmt in ("100k", "latest-small")
    ]
    + [
        ("data_dir", "two fields", "100k", [("3", "10")], None),
        ("data_dir", "two fields", "latest-small", [("3", "10")], None),
        ("data_dir", "no ratings", "100k", None, None),
        ("data_dir", "no ratings", "latest-small", None, None),
        ("data_dir", "missing directory", "100k", [], None),
    ]
)


def _write(path: Path, fmt: str, rows) -> None:
    path.mkdir(parents=True, exist_ok=True)
    items = sorted({r[1] for r in GOOD_ROWS if len(r) > 1})
    if fmt == "100k":
        (path / "u.data").write_text("".join("\t".join(r) + ("\t881250949\n" if len(r) == 3 else "\n") for r in rows))
        (path / "u.item").write_text("".join(f"{i}|Movie {i}|01-Jan-1995||u|0\n" for i in items))
    else:
        body = "".join(",".join(r) + (",964982703\n" if len(r) == 3 else "\n") for r in rows)
        (path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + body)
        (path / "movies.csv").write_text("movieId,title,genres\n" + "".join(f"{i},M {i},Drama\n" for i in items))


@pytest.mark.parametrize("case", READER_CASES, ids=lambda c: f"{c[2]}-{c[1]}")
def test_fuzz_movielens_reader(case):
    arg, what, fmt, extra, num_users = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ml"
        if what != "missing directory":
            _write(path, fmt, [] if extra is None else GOOD_ROWS + extra)

        def check(ds):  # finite ratings, every id its own user, ratings match the file
            return (
                fuzz.all_finite(ds.ratings)
                and ds.num_users == num_users
                and len({int(u) for u in ds.user_ids}) == ds.num_users
                and ds.ratings.shape == (len(GOOD_ROWS) + len(extra),)
            )

        _ok(fuzz.run_case("load_movielens", lambda: load_movielens(path), arg, check))


@pytest.mark.parametrize(
    "data_dir", [123, 1.5, b"ml", ["ml"], object()], ids=["int", "float", "bytes", "list", "object"]
)
def test_fuzz_movielens_dir_types(data_dir):
    _ok(fuzz.run_case("load_movielens", lambda: load_movielens(data_dir), "data_dir"))


# --------------------------------------------------------------------------------------- als


def _als_ok(fac, num_held_out=None):
    """Finite factors and train RMSE; the held-out RMSE finite, or NaN when nothing was held out."""
    finite = fuzz.all_finite((fac.user_vectors, fac.item_vectors, fac.mean, fac.train_rmse))
    if num_held_out is None:
        return finite and not np.isinf(fac.test_rmse)
    return finite and (np.isnan(fac.test_rmse) if num_held_out == 0 else np.isfinite(fac.test_rmse))


@pytest.mark.slow
@FUZZ
@given(st.integers(2, 8), st.floats(0.0, 0.999), st.integers(0, 3))
@example(2, 0.75, 0)  # every rating held out: the training set is empty
@example(3, 0.9, 1)
@example(5, 0.95, 2)
@example(2, 0.5, 3)  # one training rating, one held out
def test_fuzz_als_split(n, fraction, seed):
    train, test = train_test_split(n, fraction, seed)
    arg = "test_fraction" if train.size == 0 else None
    rng = np.random.default_rng(seed)
    users, items, ratings = rng.integers(0, 3, n), rng.integers(0, 2, n), rng.normal(size=n)
    fn = lambda: als(users, items, ratings, rank=1, num_iterations=2, test_fraction=fraction, seed=seed)  # noqa: E731
    _ok(fuzz.run_case("als", fn, arg, lambda fac: _als_ok(fac, test.size)))


ALS_ARGS = [
    ("rank", dict(rank=0)),
    ("rank", dict(rank=1.5)),
    ("rank", dict(rank="2")),
    ("rank", dict(rank=None)),
    ("ridge", dict(ridge=0.0)),
    ("ridge", dict(ridge="1")),
    ("ridge", dict(ridge=float("inf"))),
    ("num_iterations", dict(num_iterations=0)),
    ("num_iterations", dict(num_iterations=None)),
    ("num_users", dict(num_users="4")),
    ("num_users", dict(num_users=0)),
    ("num_items", dict(num_items=2.5)),
    ("test_fraction", dict(test_fraction=1.0)),
    ("test_fraction", dict(test_fraction=float("nan"))),
    ("test_fraction", dict(test_fraction="0.1")),
    ("ratings", dict(ratings=[1.0, float("nan"), 2.0, 3.0])),
    ("ratings", dict(ratings=["a", "b", "c", "d"])),
    ("users", dict(users=[0.5, 1, 2, 0])),
    ("users", dict(users=[-1, 1, 2, 0])),
    ("users", dict(users=[0, 1, 2])),
    ("seed", dict(seed=None)),
    ("seed", dict(seed="a")),
    ("seed", dict(seed=-1)),
    (None, dict()),
    (None, dict(num_users=10, num_items=10)),
]


@pytest.mark.parametrize("case", ALS_ARGS, ids=lambda c: f"{c[0]}-{c[1]}")
def test_fuzz_als_arguments(case):
    arg, kwargs = case
    args = dict(users=[0, 1, 2, 0], items=[0, 1, 0, 1], ratings=[4.0, 3.0, 5.0, 2.0], num_iterations=1)
    args.update(kwargs)
    _ok(fuzz.run_case("als", lambda: als(**args), arg, _als_ok))


# --------------------------------------------------------------------------- GaussianPrior.fit


def _fit_ok(g):
    """Finite, and a covariance that lin_ts accepts (positive definite in its own dtype)."""
    try:
        covariance("theta_prior.cov", g.cov, g.mean.shape[0], g.cov.dtype)
    except ValueError:
        return False
    return fuzz.all_finite(g)


@FUZZ
@given(
    st.integers(1, 40),
    st.integers(2, 40),
    st.sampled_from(["float32", "float64"]),
    st.floats(-3.0, 3.0),
    st.floats(0.0, 1e4),
    st.integers(0, 2**16),
)
def test_fuzz_gaussian_prior_fit_few_samples(d, n, dtype, log_scale, offset, seed):
    n = min(n, d + 1)  # N <= d + 1: the covariance has rank <= d (mostly rank-deficient)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * 10 ** (log_scale + rng.uniform(-1.5, 1.5, size=d)) + offset * rng.normal(size=d)
    arg = "samples" if n < 2 else None
    _ok(fuzz.run_case("GaussianPrior.fit", lambda: GaussianPrior.fit(x, dtype=getattr(jnp, dtype)), arg, _fit_ok))


FIT_ARGS = [
    ("samples", lambda: GaussianPrior.fit(np.ones((3, 2)))),
    ("samples", lambda: GaussianPrior.fit(np.ones((1, 2)))),
    ("samples", lambda: GaussianPrior.fit(np.array([[0.0, np.nan], [1.0, 2.0]]))),
    ("samples", lambda: GaussianPrior.fit(None)),
    ("samples", lambda: GaussianPrior.fit("samples")),
    ("samples", lambda: GaussianPrior.fit(np.ones(4))),
    ("jitter", lambda: GaussianPrior.fit(np.eye(3), jitter=-1.0)),
    ("jitter", lambda: GaussianPrior.fit(np.eye(3), jitter="a")),
    ("jitter", lambda: GaussianPrior.fit(np.eye(3), jitter=float("nan"))),
    ("dtype", lambda: GaussianPrior.fit(np.eye(3), dtype="foo")),
    ("dtype", lambda: GaussianPrior.fit(np.eye(3), dtype=jnp.int32)),
    (None, lambda: GaussianPrior.fit(np.eye(3)[[0, 1, 2, 0]], jitter=0.0)),
    (None, lambda: GaussianPrior.fit(np.eye(64)[:2], dtype=jnp.float32)),
    ("samples", lambda: GaussianPrior.fit(np.eye(3) * 1e30, dtype=jnp.float32)),  # covariance overflows float32
]


@pytest.mark.parametrize("case", FIT_ARGS, ids=lambda c: str(c[0]))
def test_fuzz_gaussian_prior_fit_arguments(case):
    arg, fn = case
    _ok(fuzz.run_case("GaussianPrior.fit", fn, arg, _fit_ok))


# -------------------------------------------------------------------------------------- keys

KEYS = [
    (None, "raw", lambda: jax.random.PRNGKey(3)),
    (None, "typed", lambda: jax.random.key(3)),
    ("key", "int 0", lambda: 0),
    ("key", "None", lambda: None),
    ("key", "float", lambda: 1.5),
    ("key", "string", lambda: "key"),
    ("key", "int64 pair", lambda: np.array([0, 3], np.int64)),
    ("key", "uint32 (3,)", lambda: np.zeros(3, np.uint32)),
    ("key", "raw key batch", lambda: jax.random.split(jax.random.PRNGKey(0), 2)),
    ("key", "typed key batch", lambda: jax.random.split(jax.random.key(0), 2)),
]

_X = np.random.default_rng(0).normal(size=(40, 2)) * np.array([1.0, 2.0])


def _linear_prior():
    return DiffusionPrior.linear([jnp.array([[1.0, 0.5], [0.2, -0.7]])], [0.5, 1.0])


def _mlp_prior():
    w = jnp.array([[0.6, -0.4], [0.3, 0.8]])
    return DiffusionPrior.mlp([(w, jnp.zeros(2), w, jnp.zeros(2))], [0.5, 1.0])


def _env():
    return paper_environment(jax.random.PRNGKey(2), "linear", "linear", 3, 2, [1, 2], 4)[0]


def _agent():
    return lin_ts(GaussianPrior(jnp.zeros(2), jnp.eye(2)), num_actions=3)


# entry -> (callable of the key, whether None is a documented default)
KEY_ENTRIES = {
    "sample_prior": (lambda k: sample_prior(k, _linear_prior(), 3, num_actions=2), False),
    "theta_prior_moments": (lambda k: core.theta_prior_moments(_mlp_prior(), k, 30), False),
    "calibrate_action_cov": (lambda k: calibrate_action_cov(_linear_prior(), _X, k, num_draws=30), True),
    "train_diffusion_prior": (
        lambda k: train_diffusion_prior(
            _X, num_levels=2, hidden=4, steps=2, key=k, progress=False, calibration_draws=30
        ),
        True,
    ),
    "init_eps_net": (lambda k: init_eps_net(k, 2, 4), False),
    "paper_perturbation": (lambda k: paper_perturbation(k, _linear_prior(), 0.1), False),
    "misspecified_prior": (lambda k: misspecified_prior(k, _linear_prior(), 0.5), False),
    "random_linear_prior": (lambda k: random_linear_prior(k, 2, [1]), False),
    "sample_reward": (lambda k: sample_reward(_env(), k, jnp.ones((3, 2)), jnp.ones(2), 1), False),
    "policy.act": (lambda k: policy.act(_agent(), k, _agent().init(), jnp.ones(2)), False),
    "policy.propensities": (
        lambda k: policy.propensities(_agent(), k, _agent().init(), jnp.ones(2), num_samples=20),
        False,
    ),
}


@pytest.mark.parametrize("entry", sorted(KEY_ENTRIES))
@pytest.mark.parametrize("key_case", KEYS, ids=lambda c: c[1])
def test_fuzz_keys(entry, key_case):
    arg, what, make = key_case
    fn, none_is_default = KEY_ENTRIES[entry]
    if what == "None" and none_is_default:
        arg = None  # the documented default key, PRNGKey(0)
    _ok(fuzz.run_case(entry, lambda: fn(make()), arg))


# ------------------------------------------------------------------- train_diffusion_prior

TRAIN_ARGS = [
    ("hidden", dict(hidden="a")),
    ("hidden", dict(hidden=None)),
    ("hidden", dict(hidden=2.5)),
    ("steps", dict(steps=0)),
    ("steps", dict(steps="10")),
    ("num_levels", dict(num_levels=None)),
    ("num_levels", dict(num_levels="3")),
    ("learning_rate", dict(learning_rate="x")),
    ("learning_rate", dict(learning_rate=float("nan"))),
    ("learning_rate", dict(learning_rate=None)),
    ("batch_size", dict(batch_size="x")),
    ("batch_size", dict(batch_size=0)),
    ("batch_size", dict(batch_size=1000)),
    ("max_beta", dict(max_beta="a")),
    ("max_beta", dict(max_beta=1.5)),
    ("calibration_draws", dict(calibration_draws=None)),
    ("samples", dict(samples=None)),
    ("samples", dict(samples="x")),
]


@pytest.mark.parametrize("case", TRAIN_ARGS, ids=lambda c: f"{c[0]}-{c[1]}")
def test_fuzz_train_diffusion_prior_arguments(case):
    arg, kwargs = case
    args = dict(samples=_X, num_levels=2, hidden=4, steps=2, progress=False, calibration_draws=30)
    args.update(kwargs)
    _ok(fuzz.run_case("train_diffusion_prior", lambda: train_diffusion_prior(**args), arg))
