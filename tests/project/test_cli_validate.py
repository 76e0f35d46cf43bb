import json

import pytest

from dts_ppl.cli import main


@pytest.mark.slow
def test_cli_validate_writes_json_and_plot(tmp_path, capsys):
    out, fig = tmp_path / "r.json", tmp_path / "r.png"
    argv = [
        "validate",
        "--preset",
        "logistic",
        "--json",
        str(out),
        "--plot",
        str(fig),
        "--num-obs",
        "20",
        "--num-samples",
        "150",
        "--num-warmup",
        "150",
        "--no-progress",
        # 150 draws cannot reach the ESS floor; this test checks the outputs, not the reference
        "--accept-unreliable-reference",
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["preset"] == "logistic" and set(report["sites"]) == {"psi", "theta"}
    assert set(report["nuts"]) == {
        "rhat_max",
        "ess_bulk_min",
        "ess_tail_min",
        "divergences",
        "reliable",
        "problems",
        "gates",
        "settings",
    }
    assert fig.stat().st_size > 10_000
    assert "PSIS k-hat" in capsys.readouterr().out


def test_cli_validate_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:  # rejected while parsing, before any work
        main(["validate", "--preset", "linear", "--num-obs", "-3"])
    assert exit_info.value.code == 2 and "--num-obs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["validate", "--preset", "nonsense"])
    assert main(["validation-study", "--presets", "linear,nonsense"]) == 2


def test_cli_study_passes_target_acceptance_and_chain_method(monkeypatch, capsys):
    """--target-accept overrides every preset's target acceptance; --chain-method reaches the study;
    a target outside (0, 1) is rejected before any work."""
    seen = {}

    def fake_study(presets, num_obs, **kw):
        seen.update(kw)
        return []

    monkeypatch.setattr("dts_ppl.commands.validation_study.approximation_study", fake_study)
    args = ["validation-study", "--presets", "linear,ddpm", "--target-accept", "0.95", "--chain-method", "sequential"]
    assert main(args) == 0
    assert {p: s.target_accept_prob for p, s in seen["settings"].items()} == {"linear": 0.95, "ddpm": 0.95}
    assert {p: s.chain_method for p, s in seen["settings"].items()} == {"linear": "sequential", "ddpm": "sequential"}
    seen.clear()
    for bad in ("1.0", "0", "high"):
        with pytest.raises(SystemExit) as exit_info:  # rejected while parsing, before any work
            main(["validation-study", "--presets", "linear", "--target-accept", bad])
        assert exit_info.value.code == 2 and "--target-accept" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            main(["validate", "--preset", "linear", "--target-accept", bad])
        assert "--target-accept" in capsys.readouterr().err
    assert not seen
