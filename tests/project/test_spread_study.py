"""studies/nonlinear/spread.py: its variance split against known components, and its docs block is current."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spread(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # the script imports studies.common
    spec = importlib.util.spec_from_file_location("spread_study", ROOT / "studies" / "nonlinear" / "spread.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_anova_recovers_known_variance_components(spread):
    """Instance sd 3 and agent sd 5 on a 2,000 x 4 table: the estimates are within 4 standard errors
    (se of a mean square: sigma^2 sqrt(2 / df))."""
    rng = np.random.default_rng(0)
    num_i, num_j, s_inst, s_agent = 2000, 4, 3.0, 5.0
    x = 100 + s_inst * rng.standard_normal((num_i, 1)) + s_agent * rng.standard_normal((num_i, num_j))
    a = spread.anova(x)
    se_within = s_agent**2 * np.sqrt(2 / (num_i * (num_j - 1)))
    assert abs(a["ms_within"] - s_agent**2) < 4 * se_within
    between = num_j * s_inst**2 + s_agent**2  # E[between mean square]
    se_inst = between * np.sqrt(2 / (num_i - 1)) / num_j
    assert abs(a["sd_instance"] ** 2 - s_inst**2) < 4 * se_inst
    assert abs(a["agent_share"] - 25 / 34) < 0.05
    assert a["df_within"] == num_i * (num_j - 1)
    # no instance effect: the instance part is clipped at 0, the agent share is 1
    flat = spread.anova(rng.standard_normal((50, 3)) * 0 + np.arange(3.0))
    assert flat["sd_instance"] == 0.0 and flat["agent_share"] == 1.0


def test_final_matrix_takes_key_zero_from_the_prior_seed_runs(spread):
    runs = [{"instance": i, "key": 1, "checkpoints": [1.0, 10.0 + i]} for i in (0, 1)]
    data = {"seeds": {"3": {"a": {"runs": runs}}}}
    prior_seeds = {"seeds": {"3": {"a": {"final_regrets": [5.0, 6.0, 7.0]}}}}
    x, inst = spread.final_matrix(data, "3", "a", prior_seeds)
    np.testing.assert_array_equal(x, [[5.0, 10.0], [6.0, 11.0]])
    assert inst == [0, 1]
    with pytest.raises(ValueError, match="no instance has two agent keys"):
        spread.final_matrix(data, "3", "a", {})


def test_docs_block_is_current(spread):
    import json

    data = json.loads(spread.RESULTS.read_text())
    block = spread.render(data, json.loads(spread.PRIOR_SEEDS.read_text()))
    assert block in spread.DOC.read_text()


def test_attainability_counts_resampled_sd_ratios(spread):
    """x = c * LinTS run by run: every resample's sd ratio is c, so P(ratio <= 2) is 1 for c = 1.5 and 0 for
    c = 2.5; the normal-theory value is P(F(9, 9) <= 4 / c^2) (scipy)."""
    from scipy import stats

    rng = np.random.default_rng(1)
    lin = 3000 + 100 * rng.standard_normal(spread.MIN_RUNS + 5)

    def entry(values):
        return {"runs": [{"instance": i, "key": 0, "checkpoints": [float(v)]} for i, v in enumerate(values)]}

    data = {"seeds": {str(s): {"LinTS": entry(lin), "x": entry(c * lin)} for s, c in ((0, 1.5), (1, 2.5))}}
    out = spread.attainability(data, "x")
    assert out["0"]["p_resampled"] == 1.0 and out["1"]["p_resampled"] == 0.0
    assert abs(out["0"]["ratio"] - 1.5) < 1e-12
    assert abs(out["1"]["p_F"] - stats.f.cdf(4 / 2.5**2, 9, 9)) < 1e-12
    assert out["0"]["runs"] == spread.MIN_RUNS + 5
    # the paired runs both agents have; a seed with fewer than MIN_RUNS of them is left out
    data["seeds"]["2"] = {"LinTS": entry(lin[: spread.MIN_RUNS - 1]), "x": entry(lin)}
    data["seeds"]["3"] = {"LinTS": entry(lin), "x": entry(1.5 * lin[: spread.MIN_RUNS])}
    out = spread.attainability(data, "x")
    assert set(out) == {"0", "1", "3"} and out["3"]["runs"] == spread.MIN_RUNS
