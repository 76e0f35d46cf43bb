"""Defaults quoted in the docs and docstrings agree with the code's defaults (read from the code).

Each check reads the default from the code (a signature, a class attribute, a module constant) and
the claim from the text; a test fails when either side changes alone. The preset families the
README lists are checked against the presets' names.
"""

import ast
import fnmatch
import inspect
import pathlib
import re
from types import SimpleNamespace

import pytest

from dts_ppl import DTSGuide, train_diffusion_prior
from dts_ppl.agents import dts, hier_ts
from dts_ppl.analysis import ope, theory
from dts_ppl.core import inference
from dts_ppl.core.likelihoods import Bernoulli, Poisson
from dts_ppl.core.links import MLPLink
from dts_ppl.ddpm import DDPMLink
from dts_ppl.experiments.regret import PRESETS
from dts_ppl.ppl.validate import validate

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# the public callables whose keyword defaults the docs quote
CALLABLES = {
    "dts": dts,
    "hier_ts": hier_ts,
    "DTSGuide": DTSGuide,
    "posterior": inference.posterior,
    "upward_pass": inference.upward_pass,
    "train_diffusion_prior": train_diffusion_prior,
    "Bernoulli": Bernoulli,
    "Poisson": Poisson,
    "ips": ope.ips,
    "snips": ope.snips,
    "doubly_robust": ope.doubly_robust,
    "regret_bound": theory.regret_bound,
    "validate": validate,
}
# a family name in the text -> its link class
LINK_FAMILIES = {"MLP": MLPLink, "DDPM": DDPMLink}


def code_linearisation(link_class) -> str:
    """core.default_linearisation of a prior whose first link is of ``link_class``."""
    link = link_class(*([None] * len(link_class._fields)))  # a NamedTuple: only its type is read
    return inference.default_linearisation(SimpleNamespace(link1=link))


def _defaults(fn) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def family_claims(text: str) -> list[tuple[str, str]]:
    """("iterated", "MLP") for each '"iterated" for MLP links' (or 'on') in ``text``."""
    text = re.sub(r"\s+", " ", text)
    return re.findall(r'"(identity|jacobian|iterated)" (?:for|on) (MLP|DDPM) links', text)


def keyword_claims(text: str) -> list[tuple[str, str, str]]:
    """(name, value, line) for each `name=value` quoted as a current default in a markdown text.

    A claim is a backticked `name=value` with the word "default" within 40 characters on the same
    line, not in a phrase about a former default or an override ("before", "was", "old", "passed").
    """
    out = []
    for line in text.splitlines():
        for m in re.finditer(r"`(\w+)=([^`]+)`", line):
            near = line[max(0, m.start() - 40) : m.end() + 40]
            if "default" in near and not re.search(r"\b(before|was|old|until|previous|passed)\b", near):
                out.append((m.group(1), m.group(2), line))
    return out


def test_linearisation_defaults_per_link_family():
    sources = {
        "dts docstring": dts.__doc__,
        "DTSGuide docstring": DTSGuide.__doc__,
        "core.posterior docstring": inference.posterior.__doc__,
        "core.inference module docstring": inference.__doc__,
        **{str(p.relative_to(ROOT)): p.read_text() for p in DOCS},
    }
    for required in ("dts docstring", "DTSGuide docstring", "core.posterior docstring"):
        assert {f for _, f in family_claims(sources[required])} == set(LINK_FAMILIES), required
    for where, text in sources.items():
        for rule, family in family_claims(text):
            assert rule == code_linearisation(LINK_FAMILIES[family]), (where, rule, family)
        # no docstring may name one rule as the default of every link family
        flat = re.sub(r"\s+", " ", text)
        assert not re.search(r'"(iterated|identity|jacobian)" \(default', flat), where
    for name in ("dts", "hier_ts", "DTSGuide", "posterior"):
        assert CALLABLES[name] is hier_ts or _defaults(CALLABLES[name])["linearisation"] is None, name


def test_the_defaults_page_tables_agree_with_the_code():
    text = (ROOT / "docs" / "defaults.md").read_text()
    rows = dict(re.findall(r'\(`(MLPLink|DDPMLink)`\) \| "(\w+)"', text))
    assert rows == {"MLPLink": code_linearisation(MLPLink), "DDPMLink": code_linearisation(DDPMLink)}
    tol, passes = re.search(r"Defaults: `tol = ([^`]+)`,\s+`max_passes = (\d+)`", text).groups()
    assert float(tol) == inference.DEFAULT_TOL and int(passes) == inference.DEFAULT_MAX_PASSES
    assert _defaults(inference.upward_pass)["tol"] == inference.DEFAULT_TOL
    rule = re.search(r'Step rule `"([\w-]+)"` \(the default\)', text).group(1)
    assert rule == inference.DEFAULT_STEP_RULE == inference.check_step_rule(None)
    ridge, expansion = re.search(r"carry `ridge=(\w+), expansion=\"(\w+)\"`", text).groups()
    for glm in (Bernoulli(), Poisson()):
        assert (repr(glm.ridge), glm.expansion) == (ridge, expansion)


def test_choosing_marks_the_code_defaults():
    text = (ROOT / "docs" / "choosing.md").read_text()
    action_cov = _defaults(train_diffusion_prior)["action_cov"]
    marked = re.findall(r"^\| ([^|]*?) \(default\) \|", text, re.M)  # table rows marked as the default
    assert not marked or all(action_cov in m for m in marked), marked
    assert f'`action_cov="{action_cov}"`' in text
    assert _defaults(dts)["collapse"] is None and "(`collapse=None`, the default)" in text


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_quoted_keyword_default_is_the_code_default(path):
    for name, value, line in keyword_claims(path.read_text()):
        named = [f for label, f in CALLABLES.items() if re.search(rf"\b{label}\b", line)]
        candidates = [f for f in (named or CALLABLES.values()) if name in _defaults(f)]
        if not candidates:
            continue  # a parameter of something else (not a public default this test reads)
        want = ast.literal_eval(value)
        assert any(_defaults(f)[name] == want for f in candidates), (path.name, name, value, line)


def test_the_checks_fail_on_a_wrong_quote():
    """The parsers see a planted wrong default (so the tests above can fail)."""
    assert family_claims('None (default): "identity" for MLP\n    links') == [("identity", "MLP")]
    assert code_linearisation(MLPLink) != "identity"
    [(name, value, _)] = keyword_claims("the default (`collapse=True`)")
    assert (name, value) == ("collapse", "True") and _defaults(dts)[name] is not True
    assert keyword_claims("the default before 0.2 (`action_cov=1.0`)") == []


def test_the_readme_lists_every_preset_family():
    text = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    sentence = re.search(r"The families: (.*?)\(tests/project/test_defaults_in_docs.py", text).group(1)
    patterns = re.findall(r"`([^`]+)`", sentence)
    names = sorted(PRESETS)  # the built-in ones (tests register their own, e.g. test-tiny)
    unlisted = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    assert not unlisted, f"presets the README does not list: {unlisted}"
    empty = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    assert not empty, f"README families with no preset: {empty}"
