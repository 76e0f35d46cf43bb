"""OPE estimators against known values and a Monte-Carlo check; the Open Bandit CSV reader."""

import numpy as np
import pytest
from compiles import count_compilations
from scipy import optimize

from dts_ppl.analysis import ope
from dts_ppl.data import read_open_bandit


def test_estimators_on_a_hand_computed_example():
    a = np.array([0, 1, 1, 0])
    r = np.array([1.0, 0.0, 2.0, 1.0])
    p = np.array([0.5, 0.5, 0.25, 0.5])
    target = np.array([[1.0, 0.0], [0.2, 0.8], [0.5, 0.5], [0.0, 1.0]])
    w = np.array([2.0, 1.6, 2.0, 0.0])
    est = ope.ips(a, r, p, target, interval="normal")
    assert est.value == pytest.approx(np.mean(w * r))
    assert est.se == pytest.approx(np.std(w * r, ddof=1) / 2)
    assert est.lower == pytest.approx(est.value - 1.959963984540054 * est.se)
    assert ope.snips(a, r, p, target).value == pytest.approx(np.sum(w * r) / np.sum(w))
    q = np.array([[0.5, 0.5], [1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    dm = np.sum(target * q, 1)
    dr = dm + w * (r - q[np.arange(4), a])
    assert ope.doubly_robust(a, r, p, target, q).value == pytest.approx(dr.mean())
    np.testing.assert_allclose(ope.importance_weights(a, p, target), w)


def test_ips_unbiased_and_dr_tighter_monte_carlo():
    """Uniform logging, a fixed target: over 300 datasets the mean IPS/DR estimate is within
    4 MC s.e. of the true value, and DR's spread is smaller than IPS's."""
    rng = np.random.default_rng(0)
    K, n, reps = 3, 400, 300
    means = np.array([0.2, 0.5, 0.9])
    pi = np.array([0.1, 0.3, 0.6])
    truth = pi @ means
    vals = {"ips": [], "dr": []}
    for _ in range(reps):
        a = rng.integers(0, K, n)
        r = means[a] + rng.normal(0, 1, n)
        target = np.tile(pi, (n, 1))
        p = np.full(n, 1 / K)
        # point estimates only: the normal interval skips the EL solve (its coverage is tested below)
        vals["ips"].append(ope.ips(a, r, p, target, interval="normal").value)
        q = ope.ridge_reward_model(np.zeros((n, 1)), a, r, K, folds=2)
        vals["dr"].append(ope.doubly_robust(a, r, p, target, q, interval="normal").value)
    for name, v in vals.items():
        v = np.array(v)
        assert abs(v.mean() - truth) < 4 * v.std(ddof=1) / np.sqrt(reps), name
    assert np.std(vals["dr"]) < np.std(vals["ips"])


def test_ope_input_errors():
    a, r, p = np.array([0, 1]), np.array([1.0, 0.0]), np.array([0.5, 0.5])
    t = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match=r"propensities: expected logging probabilities in \(0, 1\]"):
        ope.ips(a, r, np.array([0.0, 0.5]), t)
    with pytest.raises(ValueError, match="target: expected rows of non-negative probabilities summing to 1"):
        ope.ips(a, r, p, np.full((2, 2), 0.4))
    with pytest.raises(ValueError, match=r"actions: expected indices in \[0, 2\)"):
        ope.ips(np.array([0, 2]), r, p, t)
    with pytest.raises(ValueError, match="rewards: expected 2 finite rewards"):
        ope.snips(a, np.array([1.0, np.nan]), p, t)
    with pytest.raises(ValueError, match="q_hat: expected finite reward predictions of shape"):
        ope.doubly_robust(a, r, p, t, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="target: expected"):
        ope.ips(a, r, p, np.full(2, 0.5))
    with pytest.raises(ValueError, match=r"interval: expected one of \('normal', 'el'\)"):
        ope.ips(a, r, p, t, interval="wald")
    with pytest.raises(ValueError, match=r"interval: expected one of \('normal',\)"):
        ope.doubly_robust(a, r, p, t, np.zeros((2, 2)), interval="el")
    with pytest.raises(ValueError, match="weight_range: expected"):
        ope.ips(a, r, p, t, weight_range=(1.0, 3.0))
    with pytest.raises(ValueError, match="weight_range: the importance weights span"):
        ope.snips(a, r, np.array([0.25, 0.5]), t, weight_range=(0.0, 1.5))
    with pytest.raises(ValueError, match="reward_range: the rewards span"):
        ope.ips(a, r, p, t, reward_range=(0.0, 0.5))
    with pytest.raises(ValueError, match="only used by interval='el'"):
        ope.ips(a, r, p, t, interval="normal", reward_range=(0.0, 1.0))


def write_obd(path, rows, extra_header=True):
    header = ["timestamp", "item_id", "position", "click", "propensity_score"]
    header += [f"user_feature_{i}" for i in range(2)] + [f"user-item_affinity_{k}" for k in range(3)]
    lines = [("," if extra_header else "") + ",".join(header)]
    for i, row in enumerate(rows):
        lines.append((f"{i}," if extra_header else "") + ",".join(str(v) for v in row))
    path.write_text("\n".join(lines) + "\n")


ROWS = [
    ["2019-11-24 00:00:00.1", 2, 1, 0, 0.333, "a1f", "x9", 0.0, 1.5, 0.0],
    ["2019-11-24 00:00:01.0", 0, 2, 1, 0.333, "b7c", "x9", 0.0, 0.0, 2.0],
    ["2019-11-24 00:00:02.0", 1, 1, 1, 0.5, "a1f", "y2", 3.0, 0.0, 0.0],
]


def test_read_open_bandit_layout(tmp_path):
    path = tmp_path / "all.csv"
    write_obd(path, ROWS)  # with the unnamed index column of the published files
    logs = read_open_bandit(path)
    np.testing.assert_array_equal(logs.action, [2, 0, 1])
    np.testing.assert_array_equal(logs.reward, [0, 1, 1])
    np.testing.assert_allclose(logs.propensity, [0.333, 0.333, 0.5])
    np.testing.assert_array_equal(logs.position, [1, 2, 1])
    assert logs.num_actions == 3 and logs.timestamp[1] == "2019-11-24 00:00:01.0"
    assert logs.feature_names == [
        "user_feature_0=a1f",
        "user_feature_0=b7c",
        "user_feature_1=x9",
        "user_feature_1=y2",
        "user-item_affinity_0",
        "user-item_affinity_1",
        "user-item_affinity_2",
    ]
    np.testing.assert_array_equal(logs.context[0], [1, 0, 1, 0, 0.0, 1.5, 0.0])
    np.testing.assert_array_equal(logs.context[2], [1, 0, 0, 1, 3.0, 0.0, 0.0])
    one = read_open_bandit(path, position=1, affinity=False)
    assert one.context.shape == (2, 4) and list(one.action) == [2, 1]
    np.testing.assert_array_equal(one.context, logs.context[[0, 2], :4])
    with pytest.raises(ValueError, match="position: no rows"):
        read_open_bandit(path, position=7)
    write_obd(tmp_path / "plain.csv", ROWS, extra_header=False)
    np.testing.assert_array_equal(read_open_bandit(tmp_path / "plain.csv").context, logs.context)


def test_read_open_bandit_errors(tmp_path):
    with pytest.raises(ValueError, match="path: no such file"):
        read_open_bandit(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,item_id,click\n1,2,0\n")
    with pytest.raises(
        ValueError, match=r"lacks the Open Bandit Dataset column\(s\) \['position', 'propensity_score'\]"
    ):
        read_open_bandit(bad)
    write_obd(bad, [ROWS[0][:3] + [2] + ROWS[0][4:]])
    with pytest.raises(ValueError, match="click must be 0 or 1"):
        read_open_bandit(bad)
    write_obd(bad, [ROWS[0][:4] + [0.0] + ROWS[0][5:]])
    with pytest.raises(ValueError, match=r"propensity_score must lie in \(0, 1\]"):
        read_open_bandit(bad)
    write_obd(bad, [ROWS[0][:1] + ["two"] + ROWS[0][2:]])
    with pytest.raises(ValueError, match="column 'item_id' has a value that is not int"):
        read_open_bandit(bad)
    write_obd(bad, [ROWS[0][:-1]])
    with pytest.raises(ValueError, match="row 2 has"):
        read_open_bandit(bad)


def el_primal(w, r, weight_range, reward_range):
    """The EL interval's two convex programs solved in the primal by SLSQP (an independent reference)."""
    n = w.shape[0]
    w_min, w_max = weight_range
    u = (w - w_min) / (1 - w_min)
    v = np.ones(n) if np.isinf(w_max) else (w_max - w) / (w_max - 1)
    box = [(1e-10, 1.0)] * n
    lin = {"type": "ineq", "fun": lambda q: 1 - np.vstack([u, v]) @ q}
    opts = dict(ftol=1e-14, maxiter=2000)
    best = optimize.minimize(
        lambda q: -np.log(q).sum(), np.full(n, 0.5 / n), bounds=box, constraints=[lin], method="SLSQP", options=opts
    )
    ball = {"type": "ineq", "fun": lambda q: np.log(q).sum() + best.fun + ope.CHI2_95 / 2}
    lo, hi = reward_range
    ends = [
        optimize.minimize(
            lambda q, a=a: a @ q, best.x, bounds=box, constraints=[lin, ball], method="SLSQP", options=opts
        ).fun
        for a in (w * (r - lo), w * (hi - r))
    ]
    return lo + ends[0], hi - ends[1]


@pytest.mark.parametrize(
    "mean_w, weight_range", [(0.7, (0.0, np.inf)), (1.3, (0.0, np.inf)), (0.5, (0.0, 8.0)), (1.2, (0.1, 8.0))]
)
def test_el_interval_matches_a_primal_solver(mean_w, weight_range):
    """The two-variable duals of el_interval equal the n-variable primal programs (SLSQP)."""
    rng = np.random.default_rng(int(10 * mean_w))
    w = np.clip(rng.exponential(mean_w, 12), weight_range[0], 7.9)
    r = rng.uniform(0, 1, 12)
    got = ope.el_interval(w, r, weight_range, (-0.5, 1.5))
    np.testing.assert_allclose(got, el_primal(w, r, weight_range, (-0.5, 1.5)), atol=1e-6)


def test_el_interval_matches_a_primal_solver_on_small_samples_with_ties():
    """n = 2..14, rewards with ties at the range's ends (rows with a_i = 0, where a bounded
    optimiser can stall at a corner): still the primal programs' values."""
    rng = np.random.default_rng(7)
    for t in range(20):
        n = int(rng.integers(2, 15))
        w = rng.exponential(rng.uniform(0.5, 1.5), n)
        r = np.round(rng.uniform(size=n), 1)
        weight_range = (0.0, np.inf) if t % 3 else (0.0, max(8.0, w.max()))
        got = ope.el_interval(w, r, weight_range, (0.0, 1.0))
        np.testing.assert_allclose(got, el_primal(w, r, weight_range, (0.0, 1.0)), atol=1e-6)


def test_el_interval_with_unit_weights_is_the_normal_interval():
    """Target = logging policy: every w is 1 and EL is Owen's interval for a mean, which agrees
    with mean +- 1.96 s / sqrt(n) up to O(skewness / sqrt(n)) of the half-width (Gaussian
    rewards: measured 0.2% at n = 1000); asserted within 2%."""
    rng = np.random.default_rng(3)
    n, K = 1000, 4
    probs = rng.dirichlet(np.ones(K), n)
    a = (probs.cumsum(1) > rng.uniform(size=(n, 1))).argmax(1)
    r = 1.0 + rng.normal(size=n)
    p = probs[np.arange(n), a]
    el, normal = ope.ips(a, r, p, probs), ope.ips(a, r, p, probs, interval="normal")
    assert el.value == normal.value and el.se == normal.se
    half = 1.959963984540054 * normal.se
    assert abs(el.lower - normal.lower) < 0.02 * half and abs(el.upper - normal.upper) < 0.02 * half
    snips = ope.snips(a, r, p, probs)
    assert (snips.lower, snips.upper) == (el.lower, el.upper)  # one EL interval for V


def test_el_interval_contains_ips_when_mean_weight_is_one_and_shrinks_with_n():
    """With mean(w) = 1 the uniform q = 1/n is feasible and maximises the likelihood, so the
    interval must contain its value mean(w r); the width falls like 1 / sqrt(n)."""
    rng = np.random.default_rng(4)
    for _ in range(10):
        w = rng.pareto(2.5, 300) + 0.2
        w /= w.mean()
        r = rng.uniform(0, 1, 300)
        lo, hi = ope.el_interval(w, r, (0.0, np.inf), (0.0, 1.0))
        assert lo < np.mean(w * r) < hi
    widths = []
    for n in (250, 1000, 4000):
        w = rng.exponential(1.0, n)
        r = rng.uniform(0, 1, n)
        lo, hi = ope.el_interval(w, r, (0.0, 30.0), (0.0, 1.0))
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    assert 2.5 < widths[0] / widths[2] < 6.5  # sqrt(16) = 4


# the default run checks EL coverage under heavy-tailed weights through doubly_robust_el (the same
# el_interval): tests/analysis/test_ope_large.py::test_doubly_robust_el_covers_with_heavy_tailed_weights
@pytest.mark.slow
def test_el_coverage_under_heavy_tailed_weights_monte_carlo():
    """A skewed logger (weights 0.11, 2.5, 35; ESS ~ 0.1 n): over 300 datasets of n = 200 the EL
    interval covers the true value at >= 0.95 - 3 binomial s.e. (0.912) and <= 0.99 + 3 s.e.;
    the normal IPS interval, on the same data, covers less (measured 290/300 and 249/300)."""
    rng = np.random.default_rng(5)
    reps, n = 300, 200
    mu, pi, means = np.array([0.9, 0.08, 0.02]), np.array([0.1, 0.2, 0.7]), np.array([0.3, 0.5, 0.8])
    truth = pi @ means
    target = np.tile(pi, (n, 1))
    cover = {"el": 0, "normal": 0}
    for _ in range(reps):
        a = rng.choice(3, n, p=mu)
        r = (rng.uniform(size=n) < means[a]).astype(float)
        el = ope.ips(a, r, mu[a], target, weight_range=(0.0, 35.0), reward_range=(0.0, 1.0))
        normal = ope.ips(a, r, mu[a], target, interval="normal")
        cover["el"] += el.lower <= truth <= el.upper
        cover["normal"] += normal.lower <= truth <= normal.upper
    se = np.sqrt(0.95 * 0.05 / reps)
    assert 0.95 - 3 * se <= cover["el"] / reps <= 0.99 + 3 * se, cover
    assert cover["normal"] < cover["el"], cover


# ---------------------------------------------------------------- effective sample size, warnings


def test_effective_sample_size_is_reported_and_warns_once_below_the_fraction():
    import warnings

    a = np.array([0, 1, 1, 0])
    r = np.array([1.0, 0.0, 2.0, 1.0])
    p = np.array([0.5, 0.5, 0.25, 0.5])
    target = np.array([[1.0, 0.0], [0.2, 0.8], [0.5, 0.5], [0.0, 1.0]])
    w = np.array([2.0, 1.6, 2.0, 0.0])
    want = w.sum() ** 2 / (w**2).sum()  # Kish: 5.6^2 / 10.56
    assert ope.effective_sample_size(w) == pytest.approx(want) and ope.effective_sample_size(np.zeros(3)) == 0.0
    q = np.zeros((4, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ess 2.97 of 4 rows: no warning
        ests = [ope.ips(a, r, p, target), ope.snips(a, r, p, target), ope.doubly_robust(a, r, p, target, q)]
    for est in ests:
        assert est.ess == pytest.approx(want) and est.ess_fraction == pytest.approx(want / 4)
    # one large weight among n = 1000 rows: ess = (999 + 200)^2 / (999 + 200^2) = 35.1, 3.5% of the rows
    n = 1000
    a, r, p = np.zeros(n, int), np.ones(n), np.full(n, 0.5)
    target = np.tile([0.5, 0.5], (n, 1))
    target[0] = [1.0, 0.0]
    p[0] = 1.0 / 200 * 1.0  # w_0 = 200
    ess = 1199.0**2 / (999 + 200.0**2)
    for name, call in {
        "ips": lambda: ope.ips(a, r, p, target),
        "snips": lambda: ope.snips(a, r, p, target, interval="normal"),
        "doubly_robust": lambda: ope.doubly_robust(a, r, p, target, np.zeros((n, 2))),
    }.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = call()
        low = [c for c in caught if issubclass(c.category, ope.LowEffectiveSampleSize)]
        assert len(low) == 1, (name, [str(c.message) for c in caught])
        message = str(low[0].message)
        assert message.startswith(f"{name}: ") and f"{ess:.1f} of {n} rows" in message and "10%" in message
        assert est.ess == pytest.approx(ess)


# ---------------------------------------------------------------- agent_policy (vectorised draws)


@pytest.fixture(scope="module")
def small_agent():
    import jax
    import jax.numpy as jnp

    from dts_ppl import DiffusionPrior, Gaussian
    from dts_ppl.agents import dts

    K, d = 4, 2
    prior = DiffusionPrior.linear([jnp.eye(d), 0.5 * jnp.eye(d)], [0.5, 1.0, 1.0])
    agent = dts(prior, Gaussian(1.0), K)
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (30, d))
    A = rng.integers(0, K, 30)
    y = X @ np.array([0.5, -0.2]) + 0.3 * A + rng.normal(size=30)
    state = agent.update_batch(agent.init(), jnp.asarray(X), jnp.asarray(A), jnp.asarray(y))
    return agent, state, jax.random.PRNGKey(5)


def test_agent_policy_matches_per_row_propensities_within_monte_carlo_error(small_agent):
    """Each row against agents.propensities with its own key (the per-row reference), S = 4000 draws:
    every probability within 5 s.e. of the difference of two independent estimates."""
    import jax

    from dts_ppl.agents import propensities

    agent, state, key = small_agent
    X = np.random.default_rng(1).uniform(-1, 1, (12, 2))
    S = 4000
    keys = jax.random.split(jax.random.PRNGKey(99), 12)
    one_row = jax.jit(lambda k, x: propensities(agent, k, state, x, S).probs)
    ref = np.stack([np.asarray(one_row(k, x)) for k, x in zip(keys, X, strict=True)])
    for rows_per_block in (None, 5):
        probs = ope.agent_policy(agent, key, state, X, S, rows_per_block=rows_per_block)
        assert probs.shape == (12, 4)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-12)
        se = np.sqrt((probs * (1 - probs) + ref * (1 - ref)) / S) + 1e-12
        assert np.all(np.abs(probs - ref) <= 5 * se + 1e-3), np.max(np.abs(probs - ref) / se)
    masked = ope.agent_policy(agent, key, state, X, 200, mask=np.array([True, False, True, True]))
    assert np.all(masked[:, 1] == 0)
    with pytest.raises(ValueError, match="rows_per_block"):
        ope.agent_policy(agent, key, state, X, 200, rows_per_block=0)
    with pytest.raises(ValueError, match="num_samples"):
        ope.agent_policy(agent, key, state, X, 1)


def test_agent_policy_compiles_once_per_agent_and_shape(small_agent):
    """Repeated calls reuse the compiled function (before, every call compiled a new one)."""

    agent, state, key = small_agent
    X = np.random.default_rng(2).uniform(-1, 1, (6, 2))
    first = ope.agent_policy(agent, key, state, X, 50)
    out = []
    assert count_compilations(lambda: out.append(ope.agent_policy(agent, key, state, X, 50))) == 0
    again = out[0]
    np.testing.assert_array_equal(first, again)
    with pytest.raises(ValueError, match="X"):
        ope.agent_policy(agent, key, state, np.where(X == X[2, 1], np.nan, X), 50)


def _agent_policy_plain(agent, key, state, X, S, rows_per_block):
    """The blocks of agent_policy written plainly: every row of a block scores the block's S keys through act."""
    import jax
    import jax.numpy as jnp

    K = agent.spec.num_actions
    n = X.shape[0]
    blocks = -(-n // rows_per_block)
    padded = np.concatenate([X, np.repeat(X[-1:], blocks * rows_per_block - n, axis=0)])
    padded = padded.reshape((blocks, rows_per_block) + X.shape[1:])

    def scores(keys, x):
        return jax.vmap(lambda kk: agent.act(kk, state, x)[1].scores)(keys)

    out = []
    for k, xs in zip(jax.random.split(key, blocks), padded, strict=True):
        s = jax.vmap(scores, in_axes=(None, 0))(jax.random.split(k, S), jnp.asarray(xs))
        out.append(np.stack([np.bincount(np.asarray(w), minlength=K) / S for w in np.argmax(np.asarray(s), -1)]))
    return np.concatenate(out)[:n]


@pytest.mark.parametrize("which", ["dts", "shared", "random"])
def test_agent_policy_stores_each_draw_and_equals_the_plain_computation(small_agent, which):
    """Same keys, same probabilities as scoring every (row, draw) through act (dTS, a shared
    LinTS whose contexts are (K, d) features, and a policy whose scores ignore the context)."""
    import jax
    import jax.numpy as jnp

    from dts_ppl import Gaussian
    from dts_ppl.agents import GaussianPrior, lin_ts, random_policy

    agent, state, key = small_agent
    X = np.random.default_rng(3).uniform(-1, 1, (7, 2))
    if which == "shared":
        agent = lin_ts(GaussianPrior(jnp.zeros(2), jnp.eye(2)), Gaussian(1.0), 4, shared=True)
        state = agent.update(agent.init(), jnp.ones((4, 2)), 1, 1.0)
        X = np.random.default_rng(4).uniform(-1, 1, (7, 4, 2))
    elif which == "random":
        agent = random_policy(4)
        state = agent.init()
    for rows_per_block in (3, 7):
        key = jax.random.PRNGKey(8)
        probs = ope.agent_policy(agent, key, state, X, 64, rows_per_block=rows_per_block, precision="agent")
        ref = _agent_policy_plain(agent, key, state, X, 64, rows_per_block)
        np.testing.assert_allclose(probs, ref, atol=1e-12)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-12)
        # float32 scores from the same draws: a winner can change only where two float64 scores
        # are within float32 rounding, so at most one (row, draw) of these 7 x 64 here
        single = ope.agent_policy(agent, key, state, X, 64, rows_per_block=rows_per_block)
        assert np.sum(np.abs(single - ref)) * 64 / 2 <= 1
        np.testing.assert_allclose(single.sum(1), 1.0, atol=1e-12)


def test_agent_policy_tiles_of_draws_equal_the_plain_computation(small_agent, monkeypatch):
    """A score budget smaller than one row's draws x K: tiles of 1 row x 8 draws, same result."""
    import weakref

    import jax

    agent, state, _ = small_agent
    monkeypatch.setattr(ope, "CHUNK_BUDGET", 32)  # K = 4: 8 draws per tile
    monkeypatch.setattr(ope, "_POLICY_FNS", weakref.WeakKeyDictionary())  # compiled with this budget
    X = np.random.default_rng(7).uniform(-1, 1, (5, 2))
    probs = ope.agent_policy(agent, jax.random.PRNGKey(3), state, X, 64, rows_per_block=5, precision="agent")
    ref = _agent_policy_plain(agent, jax.random.PRNGKey(3), state, X, 64, 5)
    np.testing.assert_allclose(probs, ref, atol=1e-12)


def test_agent_policy_single_precision_agrees_with_the_agent_dtype_within_monte_carlo_error(small_agent):
    """precision="single" (float32 scores, the default) against "agent" (float64) with independent
    keys, S = 4000: every probability within 5 s.e. of the difference; with the same keys the
    winners of at most 0.1% of (row, draw) pairs differ."""
    import jax

    agent, state, _ = small_agent
    X = np.random.default_rng(6).uniform(-3, 3, (16, 2))
    S = 4000
    single = ope.agent_policy(agent, jax.random.PRNGKey(1), state, X, S)
    double = ope.agent_policy(agent, jax.random.PRNGKey(2), state, X, S, precision="agent")
    se = np.sqrt((single * (1 - single) + double * (1 - double)) / S) + 1e-12
    assert np.all(np.abs(single - double) <= 5 * se + 1e-3), np.max(np.abs(single - double) / se)
    same_keys = ope.agent_policy(agent, jax.random.PRNGKey(1), state, X, S, precision="agent")
    assert np.sum(np.abs(single - same_keys)) / 2 / len(X) <= 1e-3
    with pytest.raises(ValueError, match="precision: expected 'single' or 'agent'"):
        ope.agent_policy(agent, jax.random.PRNGKey(1), state, X, S, precision="double")


def test_first_argmax_equals_argmax_with_ties_infinities_and_nan(monkeypatch):
    """The argmax without XLA's argmax returns jnp.argmax's index (the first maximum, the first
    NaN) and flags a shared maximum, packed or (K above the packing limit) by two reductions;
    without ties the packed sum alone gives the index."""
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, (50, 7)).astype(float)  # many ties
    s[3] = -np.inf
    s[4, 2:] = np.inf
    s[5, 4] = np.nan
    s[6, [1, 5]] = np.nan
    s[7, :] = np.nan
    s[8] = [0.0, -0.0, 0.0, -1.0, -2.0, -3.0, -4.0]
    shared = np.sum(s == np.max(np.where(np.isnan(s), -np.inf, s), 1, keepdims=True), 1) > 1
    shared[np.isnan(s).any(1)] = np.isnan(s).sum(1)[np.isnan(s).any(1)] > 1
    distinct = rng.permutation(50 * 7).reshape(50, 7).astype(float)  # no ties: the packed sum alone
    for limit in (ope._PACKED_MAX_K, 3):
        monkeypatch.setattr(ope, "_PACKED_MAX_K", limit)
        for dtype in (jnp.float64, jnp.float32):
            x = jnp.asarray(s, dtype)
            first, tied = ope._first_argmax(x, True)
            np.testing.assert_array_equal(first, jnp.argmax(x, axis=-1))
            np.testing.assert_array_equal(tied, shared)
            y = jnp.asarray(distinct, dtype)
            np.testing.assert_array_equal(ope._first_argmax(y), jnp.argmax(y, axis=-1))
            assert not np.any(ope._first_argmax(y, True)[1])


def test_agent_policy_single_precision_falls_back_where_float32_ties_the_best_scores():
    """Scores 1e7 + O(1) differences (a shared LinTS whose first feature is a constant with prior
    mean 1e7): float32 rounds them to ties, so "single" repeats the call in float64 and equals
    "agent" (same keys), not the first action's share that float32 ties would give."""
    import jax
    import jax.numpy as jnp

    from dts_ppl import Gaussian
    from dts_ppl.agents import GaussianPrior, lin_ts

    prior = GaussianPrior(jnp.array([1e7, 0.0]), jnp.diag(jnp.array([1e-6, 1.0])))
    agent = lin_ts(prior, Gaussian(1.0), 4, shared=True)
    state = agent.init()
    rng = np.random.default_rng(9)
    X = np.stack([np.ones((6, 4)), rng.uniform(-1, 1, (6, 4))], axis=-1)  # (n, K, d): [1, f_a]
    key = jax.random.PRNGKey(4)
    double = ope.agent_policy(agent, key, state, X, 200, precision="agent")
    np.testing.assert_array_equal(ope.agent_policy(agent, key, state, X, 200), double)
    assert np.all(double[:, 0] < 0.9)  # the float64 scores do separate the actions


def test_single_precision_runs_nested_programs_in_their_own_dtype(monkeypatch):
    """A staged program whose context level holds a loop and a custom derivative: run with
    ``single``, its float64 values come out float32 and equal the float64 run to float32
    rounding; the loop and the custom derivative (sub-programs typed float64) ran in float64,
    the rest in float32."""
    import jax
    import jax.numpy as jnp

    def fn(key, state, x):
        z = jax.random.normal(key, (3,), jnp.float64)
        s = state @ x + z * jax.nn.softplus(x[0])  # softplus: a custom derivative (nested program)
        s = jax.lax.fori_loop(0, 3, lambda i, v: 0.5 * v + 1.0, s)  # a loop (nested program)
        return jnp.maximum(s, 0.0) + jnp.arange(3) * 1e-3

    key = jax.random.PRNGKey(0)
    state = jnp.asarray(np.random.default_rng(0).normal(size=(3, 2)))
    x = jnp.asarray([0.3, -1.2])
    program = ope._staged(fn, (key, state, x), (1, 0, 2))
    key_id, state_id, x_id = program.inputs
    fixed = ope._run_level(program, 0, {**program.consts, state_id: state})
    drawn = ope._run_level(program, 1, {**fixed, key_id: key})
    out, bound, bind = {}, [], ope._bind

    def spy(primitive, params, args):
        bound.append((primitive.name, {str(a.dtype) for a in args if hasattr(a, "dtype")} - {"int64", "int32"}))
        return bind(primitive, params, args)

    monkeypatch.setattr(ope, "_bind", spy)
    for single in (False, True):
        bound.clear()
        env = ope._run_level(program, 2, {**drawn, x_id: ope._single(x) if single else x}, single)
        out[single] = env[program.outputs[0][1]]
    nested = {"custom_jvp_call", "scan", "while"}
    assert {name for name, _ in bound} & nested and {name for name, _ in bound} - nested
    for name, dtypes in bound:
        assert dtypes == ({"float64"} if name in nested else {"float32"}), (name, dtypes)
    assert out[False].dtype == jnp.float64 and out[True].dtype == jnp.float32
    np.testing.assert_allclose(out[True], out[False], rtol=1e-6)
    np.testing.assert_allclose(out[False], fn(key, state, x), rtol=1e-14)


# ---------------------------------------------------------------- replay of a learning agent


def _replay_reference(agent, key, X, A, y, state):
    """The replay loop written plainly (Python loop, the same key sequence as ope.replay)."""
    import jax
    import jax.numpy as jnp

    accepted, k = [], key
    for x, a, r in zip(X, A, y, strict=True):
        k, sub = jax.random.split(k)
        chosen, _ = agent.act(sub, state, jnp.asarray(x))
        if int(chosen) == int(a):
            state = agent.update(state, jnp.asarray(x), jnp.asarray(a), jnp.asarray(r))
            accepted.append(True)
        else:
            accepted.append(False)
    return np.array(accepted), state


def test_replay_equals_the_plain_loop_and_estimates_a_known_value(small_agent):
    import jax

    agent, _, key = small_agent
    K = 4
    rng = np.random.default_rng(3)
    n = 60
    X = rng.uniform(-1, 1, (n, 2))
    A = rng.integers(0, K, n)
    y = X @ np.array([0.5, -0.2]) + 0.3 * A + rng.normal(size=n)
    p = np.full(n, 1.0 / K)
    result = ope.replay(agent, key, X, A, y, p)
    accepted, state = _replay_reference(agent, key, X, A, y, agent.init())
    np.testing.assert_array_equal(result.accepted, accepted)
    for u, v in zip(jax.tree.leaves(result.state), jax.tree.leaves(state), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-10, atol=1e-12)
    est = result.estimate
    assert est.n == accepted.sum() == est.ess and est.value == pytest.approx(y[accepted].mean())
    assert est.se == pytest.approx(y[accepted].std(ddof=1) / np.sqrt(est.n))

    # every action and context has mean reward 0.7: a learning agent's value is 0.7 whatever it learns
    n = 2000
    X = rng.uniform(-1, 1, (n, 2))
    A = rng.integers(0, K, n)
    y = 0.7 + rng.normal(size=n)
    est = ope.replay(agent, jax.random.PRNGKey(8), X, A, y, np.full(n, 1.0 / K)).estimate
    assert 350 < est.n < 650 and abs(est.value - 0.7) < 4 * est.se

    with pytest.raises(ValueError, match="uniform logging policy"):
        ope.replay(agent, key, X, A, y, np.where(A == 0, 0.4, 0.2))


@pytest.mark.parametrize("bad, match", [(np.nan, "X: contains NaN or inf"), ("text", "X: expected")])
def test_ridge_reward_model_names_bad_contexts(bad, match):
    n, K = 20, 3
    X = np.zeros((n, 2))
    a, r = np.arange(n) % K, np.ones(n)
    X = "text" if isinstance(bad, str) else np.where(np.arange(n)[:, None] == 4, bad, X)
    with pytest.raises(ValueError, match=match):
        ope.ridge_reward_model(X, a, r, K, folds=2)
