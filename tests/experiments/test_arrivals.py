"""The arrival process (dts_ppl/experiments/arrivals.py): schedule, regret bookkeeping, release dates."""

import jax
import numpy as np
import pytest

from dts_ppl.experiments import arrivals as ar

CFG = ar.ArrivalConfig(initial=3, interval=10, rounds=60, runs=2, pulls=4, window=20)


def test_the_twin_runs_the_catalogue_process_and_its_regret_is_consistent():
    setup = ar.generated_arrivals(CFG, dim=2, bank_size=50)
    cats = ar.arrival_agents(setup, CFG)
    assert list(cats) == list(ar.AGENTS)
    sim = ar.simulate_arrivals(jax.random.PRNGKey(0), cats["dTS + side info"], setup, CFG, side=True)
    chosen, regret, gaps = sim["chosen"], sim["regret"], sim["gaps"]
    assert chosen.shape == regret.shape == (2, 60) and gaps.shape == (2, 60, CFG.initial + CFG.arrivals)
    for t in range(60):  # only the items alive at round t are chosen: ids n_t .. n_t + initial - 1
        n_t = min(t // CFG.interval, CFG.arrivals)
        assert np.all((chosen[:, t] >= n_t) & (chosen[:, t] < n_t + CFG.initial))
        np.testing.assert_allclose(regret[:, t], gaps[np.arange(2), t, chosen[:, t]], atol=1e-6)
    assert np.all(regret >= -1e-6) and np.all(np.nanmin(gaps, -1) > -1e-6)
    m = ar.newcomer_regret(sim, CFG)
    # by hand: newcomer j (id initial + j) arrives at interval * (j + 1)
    r = 1
    pr, wr = [], []
    for j in range(CFG.arrivals):
        start = CFG.interval * (j + 1)
        rounds = [t for t in range(start, 60) if chosen[r, t] == CFG.initial + j][: CFG.pulls]
        pr.append(sum(gaps[r, t, CFG.initial + j] for t in rounds))
        if start + CFG.window <= 60:
            wr.append(regret[r, start : start + CFG.window].sum())
    assert m["pulls_regret"][r] == pytest.approx(np.mean(pr)) and m["window_regret"][r] == pytest.approx(np.mean(wr))


def test_release_dates_and_order_from_a_100k_item_file(tmp_path):
    flags = "|".join(["0"] * 18)
    lines = [
        f"1|A (1995)|01-Jan-1995||url|1|{flags}",
        f"2|B (1994)|15-Mar-1994||url|0|{flags}",
        f"3|C (1995)|01-Jan-1995||url|0|{flags}",
        f"4|unknown||||0|{flags}",
    ]
    (tmp_path / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    dates, genres = ar.release_info(tmp_path, np.array([4, 3, 2, 1]))
    assert np.isnan(dates[0]) and dates[2] < dates[1] == dates[3]
    assert genres.shape == (4, 19) and genres[3, 0] == 1.0 and genres[:3, 0].sum() == 0
    order = ar.release_order(dates)
    assert order[0] == 2 and set(order[1:3]) == {1, 3} and order[3] == 0  # unknown dates last
    with pytest.raises(ValueError, match="^data_dir"):
        ar.release_info(tmp_path / "missing", np.array([1]))


def test_release_year_from_latest_small_titles(tmp_path):
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n2,"Heat, The (1994)",Action\n', encoding="utf-8"
    )
    dates, genres = ar.release_info(tmp_path, np.array([1, 2]))
    assert dates[1] < dates[0] and genres.tolist() == [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
