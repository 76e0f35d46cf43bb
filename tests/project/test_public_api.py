"""Every public function of the main namespaces has annotated parameters and a return annotation."""

import importlib
import inspect

NAMESPACES = ("dts_ppl", "dts_ppl.core", "dts_ppl.agents", "dts_ppl.ppl")


def _ours(obj) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] == "dts_ppl"


def _methods(cls):
    """Public methods (and properties) of ``cls`` defined in the package, inherited ones included."""
    for base in cls.__mro__:
        if not _ours(base):
            continue
        for name, attr in vars(base).items():
            if name.startswith("_") and name not in ("__init__", "__call__"):
                continue
            if isinstance(attr, staticmethod | classmethod):
                attr = attr.__func__
            elif isinstance(attr, property):
                attr = attr.fget
            if inspect.isfunction(attr) and _ours(attr):
                yield f"{attr.__module__}.{attr.__qualname__}", attr


def public_functions() -> dict:
    """Qualified name -> function, for every public function and public method reachable from NAMESPACES."""
    found = {}
    for namespace in NAMESPACES:
        module = importlib.import_module(namespace)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and _ours(obj):
                found.update(_methods(obj))
            elif inspect.isfunction(obj) and _ours(obj):  # re-exports from NumPyro etc. are skipped
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def missing_annotations(fn) -> list[str]:
    """The unannotated parameters of ``fn`` (self and cls excepted), and "return" if that is missing."""
    sig = inspect.signature(fn)
    empty = inspect.Parameter.empty
    missing = [p.name for p in sig.parameters.values() if p.name not in ("self", "cls") and p.annotation is empty]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_walk_finds_the_public_api():
    found = public_functions()
    for name in (
        "dts_ppl.agents.dts.dts",
        "dts_ppl.core.inference.posterior",
        "dts_ppl.core.prior.DiffusionPrior.linear",
        "dts_ppl.core.likelihoods._GLM.laplace",  # inherited by Bernoulli and Poisson
        "dts_ppl.ppl.guide.DTSGuide.sample_posterior",
        "dts_ppl.online.Bandit.choose",
    ):
        assert name in found
    assert len(found) > 100


def test_missing_annotations_detects_gaps():
    def bare(x, *args, y: int = 0, **kwargs):
        return x

    def full(x: int, *args: int, **kwargs: int) -> int:
        return x

    assert missing_annotations(bare) == ["x", "args", "kwargs", "return"]
    assert missing_annotations(full) == []


def test_every_public_function_is_annotated():
    found = public_functions()
    gaps = {name: missing_annotations(fn) for name, fn in found.items()}
    gaps = {name: miss for name, miss in gaps.items() if miss}
    assert not gaps, "unannotated public signatures:\n" + "\n".join(f"  {n}: {m}" for n, m in sorted(gaps.items()))
