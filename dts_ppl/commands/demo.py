"""``dts-ppl demo``: condition a linear diffusion prior on simulated data and check the guide."""

from __future__ import annotations


def register(sub):
    p = sub.add_parser("demo", help="closed-form dTS posterior on a small simulated bandit, checked against the oracle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-actions", type=int, default=20)
    p.add_argument("--rounds", type=int, default=200)
    p.set_defaults(run=run)


def run(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from dts_ppl import BanditModel, DTSGuide, Gaussian, oracle
    from dts_ppl.synthetic import random_linear_prior

    key = jax.random.PRNGKey(args.seed)
    k_prior, k_true, k_data, k_post = jax.random.split(key, 4)
    K, n, d = args.num_actions, args.rounds, 5
    prior = random_linear_prior(k_prior, d, active_dims=(5, 2))
    model = BanditModel(prior, num_actions=K, likelihood=Gaussian(1.0))
    guide = DTSGuide(model)
    from dts_ppl import posterior as core

    _, theta_true = core.sample(k_true, prior, core.prior_conditionals(prior, K))
    kx, ka, ky = jax.random.split(k_data, 3)
    X = jax.random.uniform(kx, (n, d), minval=-1, maxval=1)
    A = jax.random.randint(ka, (n,), 0, K)
    y = jnp.sum(X * theta_true[A], -1) + jax.random.normal(ky, (n,))
    mo = guide.moments(X, A, y)
    ref = oracle.split(prior, oracle.joint_posterior(prior, guide.statistics(X, A, y)), K)
    draws = guide.sample_posterior(k_post, X, A, y, sample_shape=(2000,))
    err = float(jnp.max(jnp.abs(mo.theta_mean - ref["theta_mean"])))
    print(f"Linear diffusion prior: d={d}, L={prior.num_levels}, K={K}, n={n} uniformly random pulls")
    print(f"max |closed form - joint-Gaussian oracle| of posterior means: {err:.2e}")
    print(
        f"posterior sd of theta (mean over actions): {float(jnp.sqrt(jnp.diagonal(mo.theta_cov, 0, 1, 2)).mean()):.3f}"
    )
    rmse = float(jnp.sqrt(jnp.mean((draws["theta"].mean(0) - theta_true) ** 2)))
    print(f"RMSE of the posterior mean of theta vs the true theta: {rmse:.3f}")
    return 0
