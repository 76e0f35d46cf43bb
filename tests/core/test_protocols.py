"""The Link and Likelihood Protocols describe every link and likelihood the package ships."""

from pathlib import Path

import jax.numpy as jnp
import pytest

import dts_ppl
from dts_ppl import AffineLink, Bernoulli, DDPMLink, DiffusionPrior, Gaussian, MLPLink, Poisson, load_prior
from dts_ppl.core import Likelihood, Link

MODELS = Path(dts_ppl.__file__).parent / "models"


def _ddpm_link() -> DDPMLink:
    prior, _ = load_prior(MODELS / "swissroll_L40.npz")
    return prior.link1


def test_links_satisfy_the_link_protocol():
    affine = DiffusionPrior.linear([jnp.eye(2), jnp.eye(2)], [1.0, 1.0, 1.0])
    for link in (
        affine.link1,
        affine.links,
        MLPLink(*(jnp.ones(s) for s in [(3, 2), (3,), (2, 3), (2,)])),
        _ddpm_link(),
    ):
        assert isinstance(link, Link), type(link).__name__
    assert isinstance(affine.link1, AffineLink)


@pytest.mark.parametrize("likelihood", [Gaussian(0.5), Bernoulli(), Poisson()], ids=lambda lik: lik.name)
def test_likelihoods_satisfy_the_likelihood_protocol(likelihood):
    assert isinstance(likelihood, Likelihood)
    assert isinstance(likelihood.for_prior(jnp.eye(2)), Likelihood)


def test_the_protocols_refuse_what_lacks_their_members():
    assert not isinstance(jnp.eye(2), Link)
    assert not isinstance(AffineLink(jnp.eye(2), jnp.zeros(2)), Likelihood)
    assert not isinstance(Gaussian(), Link)
