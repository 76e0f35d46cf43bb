"""OPE estimators against known values and a Monte-Carlo check; the Open Bandit CSV reader."""

import numpy as np
import pytest

from dts_ppl import ope
from dts_ppl.data import read_open_bandit


def test_estimators_on_a_hand_computed_example():
    a = np.array([0, 1, 1, 0])
    r = np.array([1.0, 0.0, 2.0, 1.0])
    p = np.array([0.5, 0.5, 0.25, 0.5])
    target = np.array([[1.0, 0.0], [0.2, 0.8], [0.5, 0.5], [0.0, 1.0]])
    w = np.array([2.0, 1.6, 2.0, 0.0])
    est = ope.ips(a, r, p, target)
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
        vals["ips"].append(ope.ips(a, r, p, target).value)
        q = ope.ridge_reward_model(np.zeros((n, 1)), a, r, K, folds=2)
        vals["dr"].append(ope.doubly_robust(a, r, p, target, q).value)
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
