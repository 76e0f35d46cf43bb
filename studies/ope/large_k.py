"""OPE at large K: coverage of every estimator's 95% interval and RMSE at K = 10 .. 10,000.

The bandit (one replicate; every replicate redraws all of it, so coverage is averaged over
problems drawn from the prior, the setting in which the DM's posterior interval makes its claim):

- a linear diffusion prior (d = 3, L = 2, W_l ~ U[-1, 1]^{d x d} fixed by ``--seed``, S_l = I);
  psi and theta_1..theta_K drawn from it (:func:`dts_ppl.core.sample_prior`); with
  ``--env categorical`` only C = ceil(sqrt(K)) parameters are drawn and action a gets theta_{a mod C}
  (the reward depends on the action only through its category: MIPS's assumption holds);
- a population of ``--contexts`` M context vectors x_j ~ N(0, I / d); logged contexts are drawn
  uniformly from it, so the true value V = (1/M) sum_j sum_a pi(a | x_j) x_j^T theta_a is exact;
- rewards r = x^T theta_a + N(0, 1);
- the target: pi(a | x) = softmax(2 x^T theta_hat_a) with theta_hat = theta + N(0, 0.5^2 I) (a noisy
  reward model: "informed", the default), or with theta_hat an independent prior draw
  (``--target uninformed``: it knows nothing of theta, the case the DM's interval is built for);
- logging: uniform (1 / K), or skewed: softmax(x^T phi_a) with phi = theta + N(0, I);
- action embeddings for MIPS: k-means (:func:`ope_large.cluster_actions`, C = ceil(sqrt(K))) of
  item features theta_a + N(0, 0.3^2 I); the true categories a mod C with ``--env categorical``.

Each replicate logs ``--n`` rows and computes, through the functions of dts_ppl.analysis.ope and
dts_ppl.analysis.ope_large (their jittable parts vmapped over a block of replicates, float32):

- ips_el / ips_normal: IPS with the empirical-likelihood (default) and the normal interval;
- mips_el / mips_normal: MIPS on the categories, the same two intervals;
- dm: the direct method with the dTS posterior mean (the TRUE prior and noise sd: a best case for
  the model), interval from ``--draws`` posterior draws plus the context sampling variance;
- dr: doubly robust with the 2-fold cross-fitted dTS posterior mean, normal interval.

Every estimator also gets its domain checks on each replicate's logs (the checks behind the
package's OutsideDomain warnings): the relative ESS of the policies (ope_large.policy_ess) and of
the logged weights, the prior's share of the target's actions' own variance (ope_large.prior_share),
and MIPS's direct-effect bias under the posterior-mean reward (ope_large.direct_effect_bias).
Coverage is reported over all replicates and over those inside the estimator's domain.

    PYTHONPATH=. python studies/ope/large_k.py
    -> studies/ope/results/large_k.json   (docs/ope.md: PYTHONPATH=. python studies/ope/make_doc.py)
    PYTHONPATH=. python studies/ope/large_k.py --K 100,10000 --target uninformed   -> large_k_uninformed.json
    PYTHONPATH=. python studies/ope/large_k.py --K 100,10000 --env categorical     -> large_k_categorical.json
    PYTHONPATH=. python studies/ope/large_k.py --estimators ips_normal,dr,ips_el_policy,dr_el_policy,ips_auto,\
        dr_auto,ips_el_m2,dr_el_m2,ips_auto_m2,dr_auto_m2 --out studies/ope/results/large_k_m2.json
        (the EL with the weights' known E[w^2], ope_large.el_moment_interval, on the main run's replicates)
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from threadpoolctl import threadpool_limits

from dts_ppl import DiffusionPrior, Gaussian
from dts_ppl.analysis import ope, ope_large
from dts_ppl.core.inference import moments, resolve_linearisation
from dts_ppl.core.sampling import sample_prior
from studies.common import results_dir, save_json

#: estimator -> its domain (the check a user runs on their own logs; ``domain`` below)
ESTIMATORS = {
    "ips_normal": "ess",
    "snips_normal": "ess",
    "ips_el": "low_ess",
    "ips_el_policy": "low_ess",
    "ips_auto": "all",
    "dr": "ess",
    "dr_el": "low_ess",
    "dr_el_policy": "low_ess",
    "dr_auto": "all",
    "ips_el_mean": "low_ess",
    "dr_el_mean": "low_ess",
    "ips_el_profile": "low_ess",
    "dr_el_profile": "low_ess",
    "ips_el_sd": "low_ess",
    "dr_el_sd": "low_ess",
    "dr_el_post_sd": "low_ess",
    "ips_el_m2": "low_ess",
    "dr_el_m2": "low_ess",
    "ips_auto_m2": "all",
    "dr_auto_m2": "all",
    "dm": "prior_share",
    "mips_normal": "mips_ess+direct",
    "mips_el": "mips_low_ess+direct",
    "mips_post_normal": "post_ess+direct",
    "mips_post_el": "post_low_ess+direct",
}
D, BETA_TARGET, TARGET_NOISE, BETA_LOG, LOG_NOISE, FEATURE_NOISE, NOISE_SD = 3, 2.0, 0.5, 1.0, 1.0, 0.3, 1.0


def make_prior(seed: int) -> DiffusionPrior:
    rng = np.random.default_rng(seed)
    W = [rng.uniform(-1, 1, (D, D)) for _ in range(2)]
    return DiffusionPrior.linear(W, [1.0, 1.0, 1.0], dtype=jnp.float32)


def replicate(key, flags, prior, prior_cov, K: int, C: int, M: int, n: int, draws: int):
    """One replicate: per-row quantities of every estimator, its domain checks and the exact truth (jittable, vmapped).

    ``flags``: (3,) bool, traced (one compilation per K serves every cell): skewed logging,
    informed target, categorical environment. ``prior_cov``: (d, d) S_1, the prior covariance of theta_a given the shared latent.
    """
    skewed, informed, categorical = flags[0], flags[1], flags[2]
    ks = jax.random.split(key, 12)
    _, theta = sample_prior(ks[0], prior, 1, K)
    theta = theta[0]  # (K, d)
    category = jnp.arange(K) % C
    theta = jnp.where(categorical, theta[category], theta)  # categorical: C distinct parameters
    theta_hat = jnp.where(
        informed,
        theta + TARGET_NOISE * jax.random.normal(ks[1], theta.shape),
        sample_prior(ks[1], prior, 1, K)[1][0],
    )
    Xs = jax.random.normal(ks[2], (M, D)) / math.sqrt(D)  # the context population
    target = jax.nn.softmax(BETA_TARGET * Xs @ theta_hat.T, axis=1)  # (M, K)
    phi = theta + LOG_NOISE * jax.random.normal(ks[3], theta.shape)
    logging = jnp.where(skewed, jax.nn.softmax(BETA_LOG * Xs @ phi.T, axis=1), 1.0 / K)
    means = Xs @ theta.T  # (M, K) mean rewards
    truth = jnp.mean(jnp.sum(target * means, axis=1))
    # the log
    j = jax.random.randint(ks[4], (n,), 0, M)
    a = jax.random.categorical(ks[5], jnp.log(logging[j]), axis=1)
    X = Xs[j]
    r = means[j, a] + NOISE_SD * jax.random.normal(ks[6], (n,))
    p = logging[j, a]
    w = target[j, a] / p
    counts = jnp.zeros(M).at[j].add(1.0) / n  # the logged contexts' frequencies
    seen = counts > 0
    # the weight range the policies give on the logged contexts (ope_large.policy_weight_range)
    ratio = target / logging
    w_range = jnp.stack(
        [jnp.min(jnp.where(seen[:, None], ratio, jnp.inf)), jnp.max(jnp.where(seen[:, None], ratio, 0.0))]
    )

    def marginal(emb):
        """(weights of the logged rows, their logging marginals, the policy weight range, the
        direct-effect term B (M, K): mu(a|x) p_t(e(a)|x) / p_log(e(a)|x) - pi(a|x))."""
        pt = ope_large.embedding_marginals(target, emb, C)
        pl = ope_large.embedding_marginals(logging, emb, C)
        ratio_e = jnp.where(pl > 0, pt / jnp.where(pl > 0, pl, 1.0), 0.0)
        live = seen[:, None] & (pl > 0)
        rng_e = jnp.stack([jnp.min(jnp.where(live, ratio_e, jnp.inf)), jnp.max(jnp.where(live, ratio_e, 0.0))])
        direct = logging * ratio_e[:, emb] - target
        second = jnp.sum(ratio_e * pt, axis=1)  # (M,) E_log[w^2 | x] = sum_e p_t(e|x)^2 / p_log(e|x)
        return ratio_e[j, emb[a]], pl[j, emb[a]], rng_e, direct, second

    # MIPS on k-means categories of noisy item features
    features = theta + FEATURE_NOISE * jax.random.normal(ks[7], theta.shape)
    emb = jnp.where(categorical, category, ope_large._lloyd(ks[8], features, C, 25))
    w_mips, p_log_e, mips_range, mips_direct, mips_second = marginal(emb)
    # DM: the posterior on all rows; U_a = (1/n) sum_i pi(a | x_i) x_i
    lik, lin = Gaussian(NOISE_SD), resolve_linearisation(prior, None)
    post, lin_fit, m = ope_large._fit(prior, X, a, r, jnp.ones(n), K, lik, lin)
    loading = (counts[:, None] * target).T @ Xs
    dm = jnp.sum(loading * m)
    v = ope_large.value_draws(ks[9], prior, post, loading, draws)
    q_all = Xs @ m.T  # (M, K) the posterior-mean reward model
    per_context = jnp.sum(target * q_all, axis=1)  # (M,)
    ctx_var = (jnp.sum(counts * per_context**2) - jnp.sum(counts * per_context) ** 2) * n / (n - 1) / n
    dm_var = jnp.var(v, ddof=1) + ctx_var
    # the DM's domain: the prior's share of the posterior variance of the target's rewards
    cov = moments(prior, post, lin_fit).theta_cov  # (K, d, d)
    post_var = jnp.einsum("md,kde,me->mk", Xs, cov, Xs)
    prior_var = jnp.einsum("md,de,me->m", Xs, prior_cov, Xs)
    rho = jnp.sum(counts * jnp.sum(target * post_var, axis=1)) / jnp.sum(counts * prior_var)
    # MIPS's direct-effect bias with the posterior mean as the reward
    bhat_mips = jnp.sum(counts * jnp.sum(mips_direct * q_all, axis=1))
    # DR and MIPS on posterior categories: 2-fold cross-fitted posterior means (rows are i.i.d., so
    # fold = row index mod 2); fold f's rows get the reward model and the categories (k-means of
    # the posterior means of theta) fitted on the other fold
    fold = jnp.arange(n) % 2
    dr_direct, dr_resid = jnp.zeros(n), jnp.zeros(n)
    w_post, p_log_post, bhat_post, post_second = jnp.zeros(n), jnp.zeros(n), 0.0, 0.0
    post_lo, post_hi = jnp.inf, 0.0
    err_range = jnp.array([jnp.inf, -jnp.inf])
    # the spread (sd) of the mean reward and of the model error under the target over the population
    w_ctx = jnp.full((M, 1), 1.0 / M)
    truth_pop = truth
    err_var = 0.0
    for f in range(2):
        _, _, mf = ope_large._fit(prior, X, a, r, (fold != f).astype(X.dtype), K, lik, lin)
        qf = Xs @ mf.T
        err = means - qf
        err_var = err_var + jnp.sum(w_ctx * target * (err - jnp.sum(w_ctx * target * err)) ** 2)
        err_range = jnp.stack(
            [jnp.minimum(err_range[0], (means - qf).min()), jnp.maximum(err_range[1], (means - qf).max())]
        )
        mine = fold == f
        dr_direct = jnp.where(mine, jnp.sum(target * qf, axis=1)[j], dr_direct)
        dr_resid = jnp.where(mine, r - jnp.sum(X * mf[a], axis=1), dr_resid)
        emb_f = ope_large._lloyd(ks[10 + f], mf, C, 25)
        wf, plf, rng_f, direct_f, second_f = marginal(emb_f)
        w_post = jnp.where(mine, wf, w_post)
        p_log_post = jnp.where(mine, plf, p_log_post)
        counts_f = jnp.zeros(M).at[j].add(mine / n)
        bhat_post = bhat_post + jnp.sum(counts_f * jnp.sum(direct_f * qf, axis=1))
        post_lo, post_hi = jnp.minimum(post_lo, rng_f[0]), jnp.maximum(post_hi, rng_f[1])
        post_second = post_second + jnp.sum(counts_f * second_f)
    return dict(
        truth=truth,
        r=r,
        p=p,
        w=w,
        w_range=w_range,
        policy_ess=1.0 / jnp.sum(counts * jnp.sum(target * ratio, axis=1)),
        mips_policy_ess=1.0 / jnp.sum(counts * mips_second),
        post_policy_ess=1.0 / post_second,
        p_log_e=p_log_e,
        w_mips=w_mips,
        mips_range=mips_range,
        bhat_mips=bhat_mips,
        w_post=w_post,
        p_log_post=p_log_post,
        post_range=jnp.stack([post_lo, post_hi]),
        bhat_post=bhat_post,
        dm=dm,
        dm_var=dm_var,
        rho=rho,
        dr_direct=dr_direct,
        dr_resid=dr_resid,
        max_target=target.max(),
        mean_range=jnp.stack([means.min(), means.max()]),
        err_range=err_range,
        mean_sd=jnp.sqrt(jnp.sum(w_ctx * target * (means - truth_pop) ** 2)),
        err_sd=jnp.sqrt(err_var / 2),
        post_err_sd=jnp.sqrt(jnp.sum(w_ctx * target * post_var)),
    )


def summarise(rows: list[dict], truth: np.ndarray) -> dict:
    """Coverage (with its MC s.e.), bias (with MC s.e.), RMSE and mean width of a list of Estimates' fields."""
    v = np.array([e["value"] for e in rows])
    lo, hi = np.array([e["lower"] for e in rows]), np.array([e["upper"] for e in rows])
    cover = (lo <= truth) & (truth <= hi)
    reps = len(rows)
    err = v - truth
    return dict(
        coverage=float(cover.mean()),
        coverage_mc_se=float(np.sqrt(max(cover.mean() * (1 - cover.mean()), 1e-12) / reps)),
        miss_low=float(np.mean(truth > hi)),
        miss_high=float(np.mean(truth < lo)),
        bias=float(err.mean()),
        bias_mc_se=float(err.std(ddof=1) / np.sqrt(reps)),
        rmse=float(np.sqrt(np.mean(err**2))),
        sd=float(v.std(ddof=1)),
        mean_se=float(np.mean([e["se"] for e in rows])),
        mean_interval_width=float(np.mean(hi - lo)),
    )


def compiled(prior, K: int, args):
    """replicate, vmapped over keys and jitted once per K (the flags are traced)."""
    prior_cov = prior.cov1  # S_1: theta_a's own prior variance, given the shared latent
    fn = partial(
        replicate,
        prior=prior,
        prior_cov=prior_cov,
        K=K,
        C=math.ceil(math.sqrt(K)),
        M=args.contexts,
        n=args.n,
        draws=args.draws,
    )
    return jax.jit(jax.vmap(fn, in_axes=(0, None)))


def as_range(lo_hi, w) -> tuple[float, float]:
    """A policy weight range (float32 from the simulation) widened to hold every observed weight."""
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    return min(lo, float(w.min())), max(hi, float(w.max()), 1.0 + 1e-6)


def domain(kind: str, checks: dict, sample: bool = False) -> bool:
    """Whether one replicate's logs are inside an estimator's domain (the checks the package makes).

    Normal intervals: the policies' ESS (``ope_large.policy_ess``; with ``sample``, the logged
    weights' own ESS, the check of ``ope.LowEffectiveSampleSize``) at least ``ope.ESS_WARN_FRACTION``;
    EL intervals: below it; the "auto" rows pick by the same rule, so their domain is everything.
    DM: the prior's share at most ``ope_large.PRIOR_SHARE_WARN``; MIPS: that, and the direct-effect
    bias at most ``ope_large.DIRECT_EFFECT_WARN`` se.
    """
    low = ope.ESS_WARN_FRACTION
    ess, mips_ess, post_ess = (
        (checks["ess"], checks["ess_mips"], checks["ess_post"])
        if sample
        else (checks["policy_ess"], checks["mips_policy_ess"], checks["post_policy_ess"])
    )
    shared_ok = checks["rho"] <= ope_large.PRIOR_SHARE_WARN
    mips_direct = shared_ok and abs(checks["bhat_mips"]) <= ope_large.DIRECT_EFFECT_WARN * checks["se_mips"]
    post_direct = shared_ok and abs(checks["bhat_post"]) <= ope_large.DIRECT_EFFECT_WARN * checks["se_post"]
    return {
        "all": True,
        "ess": ess >= low,
        "low_ess": ess < low,
        "prior_share": shared_ok,
        "mips_ess+direct": mips_direct and mips_ess >= low,
        "mips_low_ess+direct": mips_direct and mips_ess < low,
        "post_ess+direct": post_direct and post_ess >= low,
        "post_low_ess+direct": post_direct and post_ess < low,
    }[kind]


def estimates(out: dict, i: int, n: int, names=None) -> tuple[dict, dict]:
    """Every estimator's Estimate fields on replicate i (only ``names`` when given), and the replicate's domain checks."""
    r, w, wm, wp = out["r"][i], out["w"][i], out["w_mips"][i], out["w_post"][i]
    names = set(ESTIMATORS) if names is None else set(names)
    est = {}
    ips = ope._estimate(w * r)
    est["ips_normal"] = ips
    value = float(np.sum(w * r) / np.sum(w))
    est["snips_normal"] = ope._estimate(w * (r - value) / np.mean(w) + value, value)
    direct, resid = out["dr_direct"][i], out["dr_resid"][i]
    dr = ope._estimate(direct + w * resid)
    est["dr"] = dr
    policy = as_range(out["w_range"][i], w)
    half = ope.Z95 * float(np.std(direct, ddof=1)) / np.sqrt(n)
    # the known E[w^2] under the logging policy on the logged contexts (1 / the policies' relative ESS)
    m2 = min(max(1.0 / float(out["policy_ess"][i]), 1.0), policy[0] + policy[1] - policy[0] * policy[1])
    normal = float(out["policy_ess"][i]) >= ope.ESS_WARN_FRACTION  # the rule (the logging policy known)

    def need(*keys):
        return any(k in names for k in keys)

    if need("ips_el"):
        lo, hi = ope.el_interval(w, r, ope.default_weight_range(out["p"][i]))
        est["ips_el"] = ips._replace(lower=lo, upper=hi)
    if need("ips_el_policy", "ips_auto"):
        lo, hi = ope.el_interval(w, r, policy)
        est["ips_el_policy"] = ips._replace(lower=lo, upper=hi)
        est["ips_auto"] = est["ips_normal"] if normal else est["ips_el_policy"]
    if need("dr_el"):
        lo, hi = ope_large.doubly_robust_el(direct, w, resid, ope.default_weight_range(out["p"][i]))
        est["dr_el"] = dr._replace(lower=lo, upper=hi)
    if need("dr_el_policy", "dr_auto"):
        lo, hi = ope_large.doubly_robust_el(direct, w, resid, policy)
        est["dr_el_policy"] = dr._replace(lower=lo, upper=hi)
        est["dr_auto"] = est["dr"] if normal else est["dr_el_policy"]
    # the atoms' reward bounded (ope.el_interval's mean_reward_range, mean_reward_sd) by the true range / sd
    # of the mean reward (of the model error for DR) over the population under the target: the tightest
    # valid user-stated bounds; the dTS posterior's error sd (ope_large.posterior_error_sd); and the
    # profile EL without atoms (E_Q[w] = 1 on the logged points only)
    if need("ips_el_mean"):
        lo, hi = ope.el_interval(w, r, policy, mean_reward_range=out["mean_range"][i])
        est["ips_el_mean"] = ips._replace(lower=lo, upper=hi)
    if need("dr_el_mean"):
        lo, hi = ope_large.doubly_robust_el(direct, w, resid, policy, mean_residual_range=out["err_range"][i])
        est["dr_el_mean"] = dr._replace(lower=lo, upper=hi)
    if need("ips_el_profile"):
        lo, hi = ope_large.el_dual_interval(w, r, *policy, (float(r.min()), float(r.max())), atoms=False)
        est["ips_el_profile"] = ips._replace(lower=lo, upper=hi)
    if need("dr_el_profile"):
        lo, hi = ope_large.el_dual_interval(w, resid, *policy, (float(resid.min()), float(resid.max())), atoms=False)
        est["dr_el_profile"] = dr._replace(
            lower=float(np.mean(direct)) + lo - half, upper=float(np.mean(direct)) + hi + half
        )
    if need("ips_el_sd"):
        lo, hi = ope.el_interval(w, r, policy, mean_reward_sd=float(out["mean_sd"][i]))
        est["ips_el_sd"] = ips._replace(lower=lo, upper=hi)
    if need("dr_el_sd"):
        lo, hi = ope_large.doubly_robust_el(direct, w, resid, policy, residual_sd=float(out["err_sd"][i]))
        est["dr_el_sd"] = dr._replace(lower=lo, upper=hi)
    if need("dr_el_post_sd"):
        lo, hi = ope_large.doubly_robust_el(direct, w, resid, policy, residual_sd=float(out["post_err_sd"][i]))
        est["dr_el_post_sd"] = dr._replace(lower=lo, upper=hi)
    # the atoms limited by the known second moment of the weights (ope_large.el_moment_interval)
    if need("ips_el_m2", "ips_auto_m2"):
        lo, hi = ope_large.el_moment_interval(w, r, *policy, m2)
        est["ips_el_m2"] = ips._replace(lower=lo, upper=hi)
        est["ips_auto_m2"] = est["ips_normal"] if normal else est["ips_el_m2"]
    if need("dr_el_m2", "dr_auto_m2"):
        lo, hi = ope_large.doubly_robust_el(direct, w, resid, policy, second_moment=m2)
        est["dr_el_m2"] = dr._replace(lower=lo, upper=hi)
        est["dr_auto_m2"] = est["dr"] if normal else est["dr_el_m2"]
    se = float(np.sqrt(out["dm_var"][i]))
    dm = float(out["dm"][i])
    est["dm"] = ope.Estimate(dm, se, dm - ope.Z95 * se, dm + ope.Z95 * se, n)
    mips = ope._estimate(wm * r)
    est["mips_normal"] = mips
    if need("mips_el"):
        lo, hi = ope.el_interval(wm, r, as_range(out["mips_range"][i], wm))
        est["mips_el"] = mips._replace(lower=lo, upper=hi)
    post = ope._estimate(wp * r)
    est["mips_post_normal"] = post
    if need("mips_post_el"):
        lo, hi = ope.el_interval(wp, r, as_range(out["post_range"][i], wp))
        est["mips_post_el"] = post._replace(lower=lo, upper=hi)
    checks = dict(
        ess=ope.effective_sample_size(w) / n,
        policy_ess=float(out["policy_ess"][i]),
        mips_policy_ess=float(out["mips_policy_ess"][i]),
        post_policy_ess=float(out["post_policy_ess"][i]),
        ess_mips=ope.effective_sample_size(wm) / n,
        ess_post=ope.effective_sample_size(wp) / n,
        rho=float(out["rho"][i]),
        bhat_mips=float(out["bhat_mips"][i]),
        bhat_post=float(out["bhat_post"][i]),
        se_mips=mips.se,
        se_post=post.se,
    )
    return {k: v._asdict() for k, v in est.items() if k in names}, checks


def simulate(fn, K: int, reps: int, flags, args, key) -> dict:
    """The per-replicate outputs of :func:`replicate` for ``reps`` replicates, as float64 arrays."""
    block = max(1, min(reps, int(args.budget // (K * (args.contexts + 3 * args.draws)))))
    keys = jax.random.split(key, -(-reps // block) * block)
    out: dict[str, list] = {}
    for b in range(0, keys.shape[0], block):
        res = jax.device_get(fn(keys[b : b + block], jnp.asarray(flags)))
        for name, val in res.items():
            out.setdefault(name, []).extend(np.asarray(val, dtype=float))
    return {name: np.asarray(val[:reps]) for name, val in out.items()}


def chosen(args) -> list[str]:
    """The estimators ``--estimators`` names (every one by default), checked."""
    if not getattr(args, "estimators", None):
        return list(ESTIMATORS)
    names = args.estimators.split(",")
    unknown = sorted(set(names) - set(ESTIMATORS))
    if unknown:
        raise ValueError(f"--estimators: unknown {unknown}; expected some of {sorted(ESTIMATORS)}")
    return names


def run_cell(fn, K: int, reps: int, flags, args, key, dump=None) -> dict:
    """``reps`` replicates of one (K, logging, target, environment) cell, summarised.

    ``dump``: a .npz path; the replicates' outputs are read from it when it exists (the
    estimators re-computed on the same replicates), else simulated and written to it.
    """
    start = time.time()
    if dump is not None and dump.exists():
        with np.load(dump) as saved:
            out = {name: saved[name] for name in saved.files}
    else:
        out = simulate(fn, K, reps, flags, args, key)
        if dump is not None:
            np.savez(dump, **out)
    sim_seconds = time.time() - start
    names = chosen(args)
    est = {name: [] for name in names}
    inside = {name: [] for name in names}
    inside_sample = {name: [] for name in names}
    checks = []
    for i in range(reps):
        with threadpool_limits(1):  # scipy's L-BFGS-B (the EL interval) slows 100-fold with BLAS threads competing
            e, c = estimates(out, i, args.n, names)
        checks.append(c)
        for name in names:
            kind = ESTIMATORS[name]
            est[name].append(e[name])
            inside[name].append(domain(kind, c))
            inside_sample[name].append(domain(kind, c, sample=True))
    truth = out["truth"]
    rows = {}
    for name in names:
        rows[name] = summarise(est[name], truth)
        rows[name]["reps"] = reps
        keep = np.array(inside[name])
        cover = [e["lower"] <= t <= e["upper"] for e, t in zip(est[name], truth, strict=True)]
        rows[name]["covered_bits"] = "".join("1" if c else "0" for c in cover)
        rows[name]["inside_bits"] = "".join("1" if k else "0" for k in keep)
        rows[name]["inside_fraction"] = float(keep.mean())
        rows[name]["inside_reps"] = int(keep.sum())
        if keep.sum() >= 2:
            rows[name]["inside"] = summarise([e for e, k in zip(est[name], keep, strict=True) if k], truth[keep])
        if ESTIMATORS[name] not in ("all", "prior_share"):  # the same domain with the logged weights' own ESS
            keep = np.array(inside_sample[name])
            rows[name]["inside_sample_reps"] = int(keep.sum())
            rows[name]["inside_sample_bits"] = "".join("1" if k else "0" for k in keep)
            if keep.sum() >= 2:
                rows[name]["inside_sample"] = summarise(
                    [e for e, k in zip(est[name], keep, strict=True) if k], truth[keep]
                )
    rows["checks"] = {
        name: dict(mean=float(np.mean([c[name] for c in checks])), median=float(np.median([c[name] for c in checks])))
        for name in checks[0]
    }
    rows["weights"] = dict(
        ips_mean_relative_ess=float(np.mean([c["ess"] for c in checks])),
        ips_mean_max_weight=float(np.mean(out["w"].max(1))),
        mips_mean_relative_ess=float(np.mean([c["ess_mips"] for c in checks])),
        mips_mean_max_weight=float(np.mean(out["w_mips"].max(1))),
        mips_post_mean_relative_ess=float(np.mean([c["ess_post"] for c in checks])),
        mips_post_mean_max_weight=float(np.mean(out["w_post"].max(1))),
        target_mean_max_prob=float(np.mean(out["max_target"])),
    )
    if "mean_sd" in out:  # the bounds the EL rows are given, against what the sample shows (means over replicates)
        rows["bounds"] = dict(
            mean_range=[float(out["mean_range"][:, 0].mean()), float(out["mean_range"][:, 1].mean())],
            reward_range=[float(out["r"].min(1).mean()), float(out["r"].max(1).mean())],
            err_range=[float(out["err_range"][:, 0].mean()), float(out["err_range"][:, 1].mean())],
            residual_range=[float(out["dr_resid"].min(1).mean()), float(out["dr_resid"].max(1).mean())],
            mean_sd=float(out["mean_sd"].mean()),
            err_sd=float(out["err_sd"].mean()),
            post_err_sd=float(out["post_err_sd"].mean()),
            policy_ess_rows=float(np.mean(out["policy_ess"]) * args.n),
            mean_weight=float(out["w"].mean(1).mean()),
            mean_weight_sd=float(out["w"].mean(1).std(ddof=1)),
        )
    rows["truth_sd"] = float(truth.std(ddof=1))
    rows["num_embeddings"] = math.ceil(math.sqrt(K))
    rows["reps"] = reps
    rows["seconds"] = round(time.time() - start, 1)
    rows["simulation_seconds"] = round(sim_seconds, 1)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--K", default="10,100,1000,10000")
    parser.add_argument("--loggers", default="uniform,skewed")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--reps-large", type=int, default=100, help="replicates at K >= 10,000")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--contexts", type=int, default=100)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--target", choices=("informed", "uninformed"), default="informed")
    parser.add_argument("--env", choices=("dts", "categorical"), default="dts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=2e7, help="floats per vmapped block (memory)")
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--key-base",
        type=int,
        default=0,
        help="index of the first --K in the key derivation (2: --K 1000,10000 "
        "draws the replicates of the default run's K = 1,000 and 10,000 cells)",
    )
    parser.add_argument("--estimators", default=None, help="comma-separated subset of ESTIMATORS (default all)")
    parser.add_argument("--dump", default=None, help="a scratch folder for the replicates' outputs (reused if there)")
    args = parser.parse_args()
    tag = "" if args.target == "informed" else "_uninformed"
    tag += "" if args.env == "dts" else "_categorical"
    path = results_dir("ope") / f"large_k{tag}.json" if args.out is None else args.out
    prior = make_prior(args.seed)
    loggers = args.loggers.split(",")
    if not set(loggers) <= {"uniform", "skewed"}:
        raise ValueError(f"--loggers: expected uniform and/or skewed, got {args.loggers!r}")
    cells = {}
    start = time.time()
    for k_index, K in enumerate(int(k) for k in args.K.split(",")):
        fn = compiled(prior, K, args)
        reps = args.reps if K < 10_000 else args.reps_large
        for logger in loggers:
            flags = np.array([logger == "skewed", args.target == "informed", args.env == "categorical"])
            key = jax.random.fold_in(
                jax.random.PRNGKey(args.seed), 10 * (args.key_base + k_index) + (logger == "skewed")
            )
            dump = None if args.dump is None else Path(args.dump) / f"{tag or 'main'}_{logger}_K{K}_{reps}.npz"
            cells[f"{logger}/K={K}"] = row = run_cell(fn, K, reps, flags, args, key, dump)
            w = row["weights"]
            print(
                f"{logger:8s} K={K:6d} ({row['seconds']:.0f} s; IPS rel. ESS {w['ips_mean_relative_ess']:.3f}, "
                f"MIPS rel. ESS {w['mips_mean_relative_ess']:.3f})",
                flush=True,
            )
            for est in chosen(args):
                s = row[est]
                ins = s.get("inside")
                print(
                    f"    {est:16s} coverage {s['coverage']:.3f} +- {s['coverage_mc_se']:.3f}  bias {s['bias']:+.4f} "
                    f"+- {s['bias_mc_se']:.4f}  rmse {s['rmse']:.4f}  width {s['mean_interval_width']:.4f}  inside "
                    f"{s['inside_reps']}" + (f" covering {ins['coverage']:.3f}" if ins else ""),
                    flush=True,
                )
            out = dict(
                command="PYTHONPATH=. python studies/ope/large_k.py "
                + f"--K {args.K} --loggers {args.loggers} --reps {args.reps} --reps-large {args.reps_large} "
                + f"--n {args.n} --contexts {args.contexts} --draws {args.draws} "
                + f"--target {args.target} --env {args.env} --seed {args.seed}"
                + (f" --key-base {args.key_base}" if args.key_base else "")
                + (f" --estimators {args.estimators}" if args.estimators else "")
                + (f" --out {args.out}" if args.out else ""),
                setup=dict(
                    d=D,
                    prior="linear, L = 2, W_l ~ U[-1, 1]^{d x d}, S_l = I",
                    environment="theta_a from the prior"
                    if args.env == "dts"
                    else "C = ceil(sqrt(K)) parameters from the prior, action a gets theta_{a mod C}",
                    contexts=args.contexts,
                    n=args.n,
                    reps=args.reps,
                    reps_large=args.reps_large,
                    noise_sd=NOISE_SD,
                    target=f"softmax({BETA_TARGET} x^T theta_hat), theta_hat = "
                    + (
                        f"theta + N(0, {TARGET_NOISE}^2 I)"
                        if args.target == "informed"
                        else "an independent prior draw"
                    ),
                    skewed_logging=f"softmax({BETA_LOG} x^T phi), phi = theta + N(0, {LOG_NOISE}^2 I)",
                    embeddings=f"k-means of theta + N(0, {FEATURE_NOISE}^2 I), C = ceil(sqrt(K)) clusters"
                    if args.env == "dts"
                    else "the true categories a mod C",
                    posterior_draws=args.draws,
                    dtype="float32",
                ),
                cells=cells,
                seconds=round(time.time() - start, 1),
                machine=f"{platform.machine()}, jax {jax.__version__}",
            )
            save_json(path, out)  # after every cell: a partial run keeps what it measured


if __name__ == "__main__":
    main()
