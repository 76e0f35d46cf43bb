"""The prior report: input checks, the verdict rule against a paired t-test, energy draws, a tiny end-to-end run."""

import json

import jax
import numpy as np
import pytest
from scipy import stats

from dts_ppl import agents as ag
from dts_ppl.analysis import prior_report as pr
from dts_ppl.bandits.simulation import RegretResult
from dts_ppl.cli import main
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.ddpm import train_diffusion_prior
from dts_ppl.io.prior_files import save_prior

TINY = dict(steps=60, num_levels=3, hidden=8)


def _result(final):
    final = np.asarray(final, np.float64)
    return RegretResult(np.stack([final / 2, final], axis=1), 0.0)


def _clusters(n, seed=0):
    rng = np.random.default_rng(seed)
    centre = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])[rng.integers(0, 3, n)]
    return centre + 0.2 * rng.standard_normal((n, 2))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DTS_PPL_CACHE", str(tmp_path / "cache"))
    return tmp_path


# ------------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(30), r"shape \(N, d\)"),
        (np.zeros((30, 2, 1)), r"shape \(N, d\)"),
        (np.zeros((30, 0)), r"shape \(N, d\)"),
        (np.array([["a", "b"]] * 30), "real numbers"),
        (np.where(np.eye(30, 2) > 0, np.nan, 1.0), "NaN or inf"),
        (np.ones((1, 2)), "at least 2 samples"),
    ],
)
def test_bad_samples_raise_naming_the_argument(bad, match):
    with pytest.raises(ValueError, match=f"samples: .*{match}"):
        pr.prior_report(bad, progress=False)


def test_too_few_samples_for_the_split_and_for_k():
    with pytest.raises(ValueError, match="expected at least 10 to train on"):
        pr.prior_report(_clusters(12), progress=False)
    with pytest.raises(ValueError, match="num_actions: .*only 30 are held out"):
        pr.prior_report(_clusters(100), pr.ReportSettings(num_actions=50), progress=False)
    with pytest.raises(ValueError, match="runs: expected at least 2"):
        pr.prior_report(_clusters(100), pr.ReportSettings(runs=1), progress=False)
    with pytest.raises(ValueError, match="train_share: expected a number in"):
        pr.prior_report(_clusters(100), pr.ReportSettings(train_share=1.5), progress=False)
    with pytest.raises(ValueError, match="contexts: expected d = 2"):
        pr.prior_report(_clusters(100), contexts=np.zeros((5, 3)), progress=False)


def test_load_samples_names_the_file(tmp_path):
    with pytest.raises(ValueError, match="SAMPLES: no file"):
        pr.load_samples(tmp_path / "none.npy", "SAMPLES")
    np.savez(tmp_path / "two.npz", a=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="several arrays"):
        pr.load_samples(tmp_path / "two.npz", "SAMPLES")
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(ValueError, match="cannot read"):
        pr.load_samples(tmp_path / "text.npy", "SAMPLES")
    np.save(tmp_path / "ok.npy", np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(pr.load_samples(tmp_path / "ok.npy"), np.arange(6.0).reshape(3, 2))


def test_cli_bad_input_exits_2_with_the_message(tmp_path, capsys):
    np.save(tmp_path / "nan.npy", np.full((40, 2), np.nan))
    assert main(["prior-report", str(tmp_path / "nan.npy"), "--quiet"]) == 2
    assert "SAMPLES: expected finite numbers" in capsys.readouterr().err


# ------------------------------------------------------------------------------- the verdict rule


def test_paired_difference_matches_scipy_paired_t_test():
    rng = np.random.default_rng(0)
    a, b = rng.normal(10, 2, 25), rng.normal(9, 2, 25)
    d, se = pr.paired(_result(a), _result(b))
    t = stats.ttest_rel(a, b).statistic
    assert d == pytest.approx(np.mean(a - b))
    assert d / se == pytest.approx(t)


def test_verdict_picks_the_simplest_prior_within_z_standard_errors():
    rng = np.random.default_rng(1)
    base = rng.normal(100, 10, 30)
    noise = lambda s: rng.normal(0, s, 30)  # noqa: E731
    fam = {"dTS": "ddpm", "HierTS": "hierarchy", "LinTS": "gaussian", "LinUCB": "gaussian", "bank": "bank"}
    # DDPM far ahead: train it
    res = {"dTS": base, "HierTS": base + 20 + noise(1), "LinTS": base + 30 + noise(1), "LinUCB": base + 25 + noise(1)}
    res["bank"] = base - 50  # outside the rule
    text, comp = pr.verdict({k: _result(v) for k, v in res.items()}, fam)
    assert text == "train the diffusion prior" and comp["best_family"] == "ddpm"
    # hierarchy ties the DDPM, Gaussian far behind
    res.update(HierTS=base + noise(1))
    text, comp = pr.verdict({k: _result(v) for k, v in res.items()}, fam)
    assert text == "a Gaussian hierarchy is as good"
    d, se = comp["differences"]["hierarchy"]
    assert d <= 2 * se or comp["best_family"] == "hierarchy"
    # LinUCB (a Gaussian-prior agent) ties the best: the Gaussian is as good, though LinTS is far behind
    res.update(LinUCB=base + noise(1))
    text, comp = pr.verdict({k: _result(v) for k, v in res.items()}, fam)
    assert text == "a fitted Gaussian is as good" and comp["best"]["gaussian"] == "LinUCB"
    # a gap of exactly z s.e. is still "as good"; just above it is not
    gap = np.r_[np.ones(15), -np.ones(15)]
    d0, se0 = pr.paired(_result(base + 1 + gap), _result(base))
    shift = 2 * se0 - d0
    two = {"dTS": _result(base), "LinTS": _result(base + 1 + gap + shift + 1e-9)}
    assert pr.verdict(two, fam)[0] == "train the diffusion prior"
    two["LinTS"] = _result(base + 1 + gap + shift - 1e-9)
    assert pr.verdict(two, fam)[0] == "a fitted Gaussian is as good"
    with pytest.raises(ValueError, match="families"):
        pr.verdict({"bank": _result(base)}, fam)


def test_energy_report_gaussian_draws_follow_the_fit_and_floor_uses_training_rows():
    rng = np.random.default_rng(2)
    train = rng.multivariate_normal([1.0, -1.0], [[1.0, 0.5], [0.5, 2.0]], 3000)
    held = rng.multivariate_normal([1.0, -1.0], [[1.0, 0.5], [0.5, 2.0]], 500)
    gauss = ag.GaussianPrior.fit(train)
    # a one-level linear chain theta = m + h + e with Cov(h) = Cov(e) = C / 2: its theta marginal is the fit's N(m, C)
    half = 0.5 * np.asarray(gauss.cov)
    chain = DiffusionPrior.linear([np.eye(2)], [half, half], [np.asarray(gauss.mean)])
    energy, draws = pr.energy_report(jax.random.PRNGKey(0), chain, gauss, train, held, num_draws=2000)
    assert energy["num_draws"] == 2000 and energy["num_heldout"] == 500
    g = draws["gaussian"]
    se = np.sqrt(np.diag(gauss.cov) / g.shape[0])
    assert np.all(np.abs(g.mean(0) - np.asarray(gauss.mean)) < 5 * se)
    # the chain's theta marginal is N(m, C) too: its draws' mean within 5 s.e. of the fit's
    assert np.all(np.abs(draws["ddpm"].mean(0) - np.asarray(gauss.mean)) < 5 * se)
    # all three sets are draws of the same Gaussian: distances of the same size (none is an outlier)
    vals = np.array([energy["ddpm"], energy["gaussian"], energy["floor"]])
    assert vals.max() < 3 * vals.min() + 0.05


# ------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tiny_report_per_action_trains_runs_every_agent_and_writes_atomically(cache):
    samples = _clusters(150)
    report = pr.prior_report(
        samples, pr.ReportSettings(num_actions=5, rounds=15, runs=3), training=TINY, progress=False
    )
    assert list(report.results) == ["dTS", "HierTS", "LinTS", "LinUCB", "bank TS"]
    assert report.verdict in pr.VERDICTS.values() and report.verdict_thompson in pr.VERDICTS.values()
    assert report.settings["num_train"] == 105 and report.settings["num_heldout"] == 45
    # the report's regret of an agent is the same simulate() call a user would make: paired runs
    assert all(r.cumulative.shape == (3, 15) for r in report.results.values())
    assert report.prior_metadata["steps"] == TINY["steps"]
    assert list(cache.joinpath("cache").glob("prior-report-*.npz")), "the trained prior is cached"
    out = cache / "r.json"
    pr.write_report(report, out, cache / "r.png")
    data = json.loads(out.read_text())
    assert data["verdict"] == report.verdict and len(data["regret"]["dTS"]["final_regrets"]) == 3
    assert (cache / "r.png").stat().st_size > 1000
    assert not [p for p in cache.iterdir() if ".tmp" in p.name]


def test_hook_agents_join_their_prior_in_the_verdict(cache):
    """An agent declared for the DDPM competes for it (and a random one does not win it the verdict)."""
    samples = _clusters(120, seed=3)
    agents = [
        pr.ReportAgent("random", "ddpm", "random", lambda p: ag.random_policy(p.num_actions)),
        *[a for a in pr.REPORT_AGENTS if a.name in ("HierTS", "LinTS")],
    ]
    report = pr.prior_report(
        samples, pr.ReportSettings(num_actions=4, rounds=40, runs=4), training=TINY, agents=agents, progress=False
    )
    assert list(report.results) == ["random", "HierTS", "LinTS"]
    assert report.verdict != "train the diffusion prior"
    assert report.comparisons["all"]["best"]["ddpm"] == "random"
    assert report.agents["random"] == dict(prior="ddpm", policy="random")
    assert report.comparisons["thompson"]["best"] == {"hierarchy": "HierTS", "gaussian": "LinTS"}


def test_cli_with_a_given_prior_and_heldout(cache, capsys):
    train, held = _clusters(80, seed=4), _clusters(30, seed=5)
    trained = train_diffusion_prior(train, key=jax.random.PRNGKey(0), progress=False, action_cov="beta", **TINY)
    save_prior(cache / "p.npz", trained.prior, trained.metadata)
    np.save(cache / "s.npy", train)
    np.save(cache / "h.npy", held)
    argv = ["prior-report", str(cache / "s.npy"), "--heldout", str(cache / "h.npy"), "--prior", str(cache / "p.npz")]
    argv += ["--shared", "--num-actions", "4", "--rounds", "10", "--runs", "2", "--quiet"]
    argv += ["--json", str(cache / "o.json"), "--plot", str(cache / "o.png")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "verdict:" in out and "wrote" in out
    data = json.loads((cache / "o.json").read_text())
    assert data["settings"]["heldout_given"] and data["settings"]["num_train"] == 80
    assert data["settings"]["prior_source"].endswith("p.npz")
    assert set(data["regret"]) == {"dTS", "LinTS", "LinUCB", "bank TS"}  # no hierarchy with a shared parameter


# slow: the default run checks the policy agents in the verdict (test_hook_agents_join_their_prior_in_the_verdict)
@pytest.mark.slow
def test_cli_policies_adds_the_optimistic_agents_to_their_priors(cache, capsys):
    """--policies runs POLICY_AGENTS too: each joins its prior in the all-agent verdict, none the Thompson one."""
    train, held = _clusters(80, seed=6), _clusters(30, seed=7)
    trained = train_diffusion_prior(train, key=jax.random.PRNGKey(0), progress=False, action_cov="beta", **TINY)
    save_prior(cache / "p.npz", trained.prior, trained.metadata)
    np.save(cache / "s.npy", train)
    np.save(cache / "h.npy", held)
    argv = ["prior-report", str(cache / "s.npy"), "--heldout", str(cache / "h.npy"), "--prior", str(cache / "p.npz")]
    argv += ["--shared", "--num-actions", "4", "--rounds", "10", "--runs", "2", "--quiet", "--policies"]
    assert main(argv + ["--json", str(cache / "o.json")]) == 0
    data = json.loads((cache / "o.json").read_text())
    # no hierarchy with a shared parameter: HierTS and its policies are not run
    assert set(data["regret"]) == {"dTS", "LinTS", "LinUCB", "bank TS", "dTS Bayes-UCB", "dTS UCB", "LinTS Bayes-UCB"}
    assert data["regret"]["dTS Bayes-UCB"]["prior"] == "ddpm" and data["regret"]["dTS UCB"]["policy"] == "ucb"
    finals = {n: np.mean(r["final_regrets"]) for n, r in data["regret"].items()}
    best = data["comparisons"]["all"]["best"]
    assert best["ddpm"] == min(("dTS", "dTS Bayes-UCB", "dTS UCB"), key=finals.get)
    assert best["gaussian"] == min(("LinTS", "LinUCB", "LinTS Bayes-UCB"), key=finals.get)
    assert data["comparisons"]["thompson"]["best"] == {"gaussian": "LinTS", "ddpm": "dTS"}


def test_docs_page_is_generated_from_the_study_json(monkeypatch):
    """docs/prior_report.md is what the study script's --markdown writes from studies/prior_report/results."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    monkeypatch.syspath_prepend(str(root))
    spec = importlib.util.spec_from_file_location(
        "prior_report_study", root / "studies/prior_report/prior_report_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.page() == (root / "docs" / "prior_report.md").read_text()


def _study():
    import importlib.util
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location(
        "prior_report_study", root / "studies/prior_report/prior_report_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_family_maps_posterior_policies_to_their_prior():
    study = _study()
    names = ["dTS", "dTS Bayes-UCB", "HierTS UCB", "HierTS", "LinTS Bayes-UCB", "LinUCB", "bank TS", "random", "dTSx"]
    got = [study.table_family(n) for n in names]
    assert got == ["ddpm", "ddpm", "hierarchy", "hierarchy", "gaussian", "gaussian", None, None, None]


def test_preset_verdict_is_paired_when_the_table_keeps_runs_and_unpaired_otherwise(tmp_path):
    """A table where LinUCB is 1.0 above dTS on every run (spread 10 across runs): paired, the gap is
    measurable (train the diffusion prior); from means and s.e. alone it is not (a fitted Gaussian)."""
    study = _study()
    rng = np.random.default_rng(0)
    base = 100 + 10 * rng.standard_normal(30)
    finals = {
        "dTS": base,
        "LinUCB": base + 1.0 + 0.1 * rng.standard_normal(30),
        "LinTS": base + 30.0,
        "dTS Bayes-UCB": base - 5.0,
        "bank TS": base - 50.0,
    }

    def table(keep_runs):
        algos = {}
        for n, f in finals.items():
            algos[n] = dict(final_regret_mean=float(f.mean()), final_regret_se=float(f.std(ddof=1) / np.sqrt(30)))
            if keep_runs:
                algos[n]["final_regrets"] = f.tolist()
        return dict(runs=30, rounds=10, algorithms=algos)

    paired_file, mean_file = tmp_path / "p.json", tmp_path / "m.json"
    paired_file.write_text(json.dumps(table(True)))
    mean_file.write_text(json.dumps(table(False)))
    report = {"regret": {n: {"final_regrets": finals[n].tolist()} for n in ("dTS", "LinUCB")}}

    ref = study.preset_verdict([str(tmp_path / "absent.json"), str(paired_file)], report=report)
    assert ref["file"] == str(paired_file) and ref["all"]["paired"]
    t = stats.ttest_rel(finals["LinUCB"], finals["dTS"])
    d, se = ref["all"]["differences"]["gaussian"]
    assert d == pytest.approx(float(np.mean(finals["LinUCB"] - finals["dTS"])), rel=1e-12)
    assert d / se == pytest.approx(t.statistic, rel=1e-10)
    assert ref["all"]["verdict"] == pr.VERDICTS["ddpm"]
    assert ref["thompson"]["verdict"] == pr.VERDICTS["ddpm"]  # LinTS is 30 above on every run
    assert ref["policies"]["best"] == {"gaussian": "LinUCB", "ddpm": "dTS Bayes-UCB"}  # bank TS is outside the rule
    assert ref["same_runs"] == 0.0

    ref = study.preset_verdict([str(mean_file)], report=report)
    assert not ref["all"]["paired"] and ref["same_runs"] is None
    a, b = ref["regrets"]["LinUCB"], ref["regrets"]["dTS"]
    assert ref["all"]["differences"]["gaussian"] == pytest.approx([a[0] - b[0], np.hypot(a[1], b[1])])
    assert ref["all"]["verdict"] == pr.VERDICTS["gaussian"]
    assert study.preset_verdict([str(tmp_path / "absent.json")]) is None
