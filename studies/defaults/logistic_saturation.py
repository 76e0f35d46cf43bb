"""How saturated the logistic Figure-1 problems are (docs/results.md, logistic K = 10^4).

    PYTHONPATH=. python studies/defaults/logistic_saturation.py     # prints one line per problem (no file)

One theta draw per problem, 200 contexts U[-1, 1]^d: median |x^T theta_a|, the regret per round
of a uniformly random policy, and the fraction of actions within 0.01 of the best mean reward.
"""

import jax
import jax.numpy as jnp

from dts_ppl.experiments.regret import SIZES
from dts_ppl.experiments.synthetic import paper_environment

for diff in ("linear", "mlp"):
    for K in (100, 10000):
        env, prior = paper_environment(jax.random.PRNGKey(0), diff, "logistic", K, *SIZES[K])
        k1, k2 = jax.random.split(jax.random.PRNGKey(3))
        theta = env.sample_theta(k1)
        x = jax.random.uniform(k2, (200, theta.shape[1]), minval=-1, maxval=1)
        eta = x @ theta.T
        p = jax.nn.sigmoid(eta)
        gap = p.max(1, keepdims=True) - p
        print(
            f"{diff} {K} median |eta| {float(jnp.median(jnp.abs(eta))):.1f}",
            f"random-policy regret/round {float(gap.mean()):.3f}",
            f"frac actions within 0.01 of best {float((gap < 0.01).mean()):.3f}",
        )
