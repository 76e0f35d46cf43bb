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

The EL intervals take seconds each on shared CPUs: only the first ``--el-reps`` replicates get them.

    PYTHONPATH=. python studies/ope/large_k.py
    -> studies/ope/results/large_k.json   (docs/ope.md: PYTHONPATH=. python studies/ope/make_doc.py)
    PYTHONPATH=. python studies/ope/large_k.py --K 100,10000 --target uninformed   -> large_k_uninformed.json
    PYTHONPATH=. python studies/ope/large_k.py --K 100,10000 --env categorical     -> large_k_categorical.json
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import DiffusionPrior, Gaussian
from dts_ppl.analysis import ope, ope_large
from dts_ppl.core.inference import resolve_linearisation
from dts_ppl.core.sampling import sample_prior
from studies.common import results_dir, save_json

ESTIMATORS = ("ips_el", "ips_normal", "mips_el", "mips_normal", "dm", "dr")
D, BETA_TARGET, TARGET_NOISE, BETA_LOG, LOG_NOISE, FEATURE_NOISE, NOISE_SD = 3, 2.0, 0.5, 1.0, 1.0, 0.3, 1.0


def make_prior(seed: int) -> DiffusionPrior:
    rng = np.random.default_rng(seed)
    W = [rng.uniform(-1, 1, (D, D)) for _ in range(2)]
    return DiffusionPrior.linear(W, [1.0, 1.0, 1.0], dtype=jnp.float32)


def replicate(key, flags, prior, K: int, C: int, M: int, n: int, draws: int):
    """One replicate: per-row quantities of every estimator and the exact truth (jittable, vmapped).

    ``flags``: (3,) bool, traced (one compilation per K serves every cell): skewed logging,
    informed target, categorical environment.
    """
    skewed, informed, categorical = flags[0], flags[1], flags[2]
    ks = jax.random.split(key, 10)
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
    # MIPS on k-means categories of noisy item features
    features = theta + FEATURE_NOISE * jax.random.normal(ks[7], theta.shape)
    emb = jnp.where(categorical, category, ope_large._lloyd(ks[8], features, C, 25))
    p_log_e = ope_large.embedding_marginals(logging, emb, C)[j, emb[a]]
    w_mips = ope_large.embedding_marginals(target, emb, C)[j, emb[a]] / p_log_e
    # DM: the posterior on all rows; U_a = (1/n) sum_i pi(a | x_i) x_i
    lik, lin = Gaussian(NOISE_SD), resolve_linearisation(prior, None)
    post, _, m = ope_large._fit(prior, X, a, r, jnp.ones(n), K, lik, lin)
    counts = jnp.zeros(M).at[j].add(1.0) / n
    loading = (counts[:, None] * target).T @ Xs
    dm = jnp.sum(loading * m)
    v = ope_large.value_draws(ks[9], prior, post, loading, draws)
    per_context = jnp.sum(target * (Xs @ m.T), axis=1)  # (M,)
    ctx_var = (jnp.sum(counts * per_context**2) - jnp.sum(counts * per_context) ** 2) * n / (n - 1) / n
    dm_var = jnp.var(v, ddof=1) + ctx_var
    # DR: 2-fold cross-fitted posterior means (rows are i.i.d., so fold = row index mod 2)
    fold = jnp.arange(n) % 2
    dr = jnp.zeros(n)
    for f in range(2):
        _, _, mf = ope_large._fit(prior, X, a, r, (fold != f).astype(X.dtype), K, lik, lin)
        direct = jnp.sum(target * (Xs @ mf.T), axis=1)[j]
        q_logged = jnp.sum(X * mf[a], axis=1)
        dr = jnp.where(fold == f, direct + w * (r - q_logged), dr)
    return dict(
        truth=truth, r=r, p=p, w=w, p_log_e=p_log_e, w_mips=w_mips, dm=dm, dm_var=dm_var, dr=dr, max_target=target.max()
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
    fn = partial(replicate, prior=prior, K=K, C=math.ceil(math.sqrt(K)), M=args.contexts, n=args.n, draws=args.draws)
    return jax.jit(jax.vmap(fn, in_axes=(0, None)))


def run_cell(fn, K: int, reps: int, flags, args, key) -> dict:
    """``reps`` replicates of one (K, logging, target, environment) cell, summarised."""
    block = max(1, min(reps, int(args.budget // (K * (args.contexts + 3 * args.draws)))))
    keys = jax.random.split(key, -(-reps // block) * block)
    out: dict[str, list] = {}
    start = time.time()
    for b in range(0, keys.shape[0], block):
        res = jax.device_get(fn(keys[b : b + block], jnp.asarray(flags)))
        for name, val in res.items():
            out.setdefault(name, []).extend(np.asarray(val, dtype=float))
    out = {name: np.asarray(val[:reps]) for name, val in out.items()}
    sim_seconds = time.time() - start
    el_reps = min(reps, args.el_reps)
    est = {name: [] for name in ESTIMATORS}
    ess_ips, ess_mips = [], []
    for i in range(reps):
        r, w, wm = out["r"][i], out["w"][i], out["w_mips"][i]
        ips = ope._estimate(w * r)
        mips = ope._estimate(wm * r)
        est["ips_normal"].append(ips._asdict())
        est["mips_normal"].append(mips._asdict())
        if i < el_reps:  # the EL interval costs seconds per call on a loaded machine
            lo, hi = ope.el_interval(w, r, ope.default_weight_range(out["p"][i]))
            est["ips_el"].append(ips._replace(lower=lo, upper=hi)._asdict())
            lo, hi = ope.el_interval(wm, r, ope.default_weight_range(out["p_log_e"][i]))
            est["mips_el"].append(mips._replace(lower=lo, upper=hi)._asdict())
        se = float(np.sqrt(out["dm_var"][i]))
        dm = float(out["dm"][i])
        est["dm"].append(dict(value=dm, se=se, lower=dm - ope.Z95 * se, upper=dm + ope.Z95 * se))
        est["dr"].append(ope._estimate(out["dr"][i])._asdict())
        ess_ips.append(ope.effective_sample_size(w) / args.n)
        ess_mips.append(ope.effective_sample_size(wm) / args.n)
    truth = out["truth"]
    rows = {name: summarise(est[name], truth[: len(est[name])]) for name in ESTIMATORS}
    for name in ESTIMATORS:
        rows[name]["reps"] = len(est[name])
    rows["weights"] = dict(
        ips_mean_relative_ess=float(np.mean(ess_ips)),
        ips_mean_max_weight=float(np.mean(out["w"].max(1))),
        mips_mean_relative_ess=float(np.mean(ess_mips)),
        mips_mean_max_weight=float(np.mean(out["w_mips"].max(1))),
        target_mean_max_prob=float(np.mean(out["max_target"])),
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
    parser.add_argument("--el-reps", type=int, default=40, help="replicates that also get the EL intervals")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--contexts", type=int, default=100)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--target", choices=("informed", "uninformed"), default="informed")
    parser.add_argument("--env", choices=("dts", "categorical"), default="dts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=2e7, help="floats per vmapped block (memory)")
    parser.add_argument("--out", default=None)
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
            key = jax.random.fold_in(jax.random.PRNGKey(args.seed), 10 * k_index + (logger == "skewed"))
            cells[f"{logger}/K={K}"] = row = run_cell(fn, K, reps, flags, args, key)
            w = row["weights"]
            print(
                f"{logger:8s} K={K:6d} ({row['seconds']:.0f} s; IPS rel. ESS {w['ips_mean_relative_ess']:.3f}, "
                f"MIPS rel. ESS {w['mips_mean_relative_ess']:.3f})",
                flush=True,
            )
            for est in ESTIMATORS:
                s = row[est]
                print(
                    f"    {est:12s} coverage {s['coverage']:.3f} +- {s['coverage_mc_se']:.3f}  bias {s['bias']:+.4f} "
                    f"+- {s['bias_mc_se']:.4f}  rmse {s['rmse']:.4f}  width {s['mean_interval_width']:.4f}",
                    flush=True,
                )
            out = dict(
                command="PYTHONPATH=. python studies/ope/large_k.py "
                + f"--K {args.K} --loggers {args.loggers} --reps {args.reps} --reps-large {args.reps_large} "
                + f"--el-reps {args.el_reps} --n {args.n} --contexts {args.contexts} --draws {args.draws} "
                + f"--target {args.target} --env {args.env} --seed {args.seed}",
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
                    el_reps=args.el_reps,
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
