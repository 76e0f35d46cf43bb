"""The CUSUM change detector (core.change_detector): its threshold rule against simulated false alarms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl.core import change_detector as cd

RHO = cd.variance_ratio_rule(1.0, 1.0 / 3.0, 5.0)


def _alarm_counts(key, threshold, streams, rounds):
    """Alarms of the restarted CUSUM on independent N(0, 1) streams, (streams,)."""
    z = jax.random.normal(key, (streams, rounds))

    def one(zs):
        def step(s, zt):
            s, alarm = cd.cusum_step(s, zt, RHO, threshold)
            return s, alarm

        return jnp.sum(jax.lax.scan(step, jnp.zeros((), z.dtype), zs)[1])

    return np.asarray(jax.jit(jax.vmap(one))(z))


@pytest.mark.parametrize("alpha", [0.01, 0.002])
def test_false_alarm_rate_is_the_rule(alpha):
    h = cd.cusum_threshold(alpha, RHO)
    streams, rounds = 50, 20000
    counts = _alarm_counts(jax.random.PRNGKey(int(1 / alpha)), h, streams, rounds)
    rate = counts.sum() / (streams * rounds)
    se = counts.std(ddof=1) / math.sqrt(streams) / rounds
    assert abs(rate - alpha) < 5 * se, f"rate {rate:.5f} vs alpha {alpha} (se {se:.5f})"
    assert se < 0.05 * alpha  # the check can tell a 25% error


def test_arl_grows_with_threshold_and_matches_zero_threshold():
    # h = 0: an alarm as soon as g(z) > 0, i.e. z^2 > log(rho) / (1 - 1 / rho): ARL = 1 / P(that)
    p = 1.0 - math.erf(math.sqrt(math.log(RHO) / (1.0 - 1.0 / RHO) / 2.0))
    assert cd.cusum_arl(0.0, RHO) == pytest.approx(1.0 / p, rel=1e-9)
    assert cd.cusum_arl(2.0, RHO) < cd.cusum_arl(4.0, RHO)
    assert cd.cusum_arl(cd.cusum_threshold(1e-3, RHO), RHO) == pytest.approx(1e3, rel=1e-4)


def test_bad_input():
    with pytest.raises(ValueError, match="ratio"):
        cd.cusum_threshold(0.01, 1.0)
    with pytest.raises(ValueError, match="false_alarm_rate"):
        cd.cusum_threshold(0.0, RHO)
    with pytest.raises(ValueError, match="threshold"):
        cd.cusum_arl(-1.0, RHO)
    with pytest.raises(ValueError, match="action_cov_trace"):
        cd.variance_ratio_rule(1.0, 0.3, 0.0)
