"""OPE validated by simulation: 95% interval coverage, bias and RMSE of IPS, SNIPS and DR.

A linear-Gaussian bandit (K actions, x ~ N(0, I_d), r = x^T theta_a + N(0, 0.5^2)); two known
logging policies (uniform, and a softmax of x^T phi_a with other weights phi); a fixed
stochastic target policy pi(a | x) = softmax(2 x^T theta_hat_a) with theta_hat a perturbed
theta. The true value E_x[sum_a pi(a | x) x^T theta_a] is computed on 2 x 10^6 fresh contexts
(its MC s.e. is stored; it is ~50x below the estimators' s.e.). Each repetition draws n logged
rows and computes the three estimates and their 95% intervals: for IPS and SNIPS both the
empirical-likelihood interval (their default, interval="el", weights in [0, 1 / min p], rewards
in the observed range), the EL interval without a weight bound ("ips_el_inf", weights in
[0, inf)) and the normal one ("ips_normal", "snips_normal"); DR uses the
cross-fitted ridge model (ope.ridge_reward_model) and the normal interval.

    python studies/ope/ope_coverage.py [--reps 500] [--n 1000]
    -> studies/ope/results/ope_coverage.json
    python studies/ope/ope_coverage.py --table   # the markdown table of docs/practitioner.md, from the JSON
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from dts_ppl.analysis import ope


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


LABELS = {
    "ips": "IPS, EL interval (default)",
    "ips_normal": "IPS, normal interval",
    "ips_el_inf": "IPS, EL interval, w_max = inf",
    "snips": "SNIPS, EL interval (default)",
    "snips_normal": "SNIPS, normal interval",
    "dr": "DR, normal interval",
}
LOGGERS = {"uniform": "uniform", "softmax_0.3": "softmax(0.3 x^T phi)", "softmax_0.7": "softmax(0.7 x^T phi)"}


def markdown_table(out) -> str:
    """The coverage / bias / RMSE table of a results dict; coverage outside [0.90, 0.99] in bold."""
    lines = [
        "| logging policy | mean max weight, relative ESS | estimator | coverage of 95% CI | bias | RMSE "
        "| mean CI width |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rows in out["results"].items():
        first = True
        for key, label in LABELS.items():
            row = rows[key]
            cov = f"{row['coverage']:.3f}"
            cov = cov if 0.90 <= row["coverage"] <= 0.99 else f"**{cov}**"
            weights = rows["weights"]
            head = f"{LOGGERS[name]} | {weights['mean_max_weight']:.1f}, {weights['mean_relative_ess']:.2f}"
            head = head if first else " | "
            lines.append(
                f"| {head} | {label} | {cov} | {row['bias']:+.4f} | {row['rmse']:.3f} "
                f"| {row['mean_interval_width']:.3f} |"
            )
            first = False
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=500)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", default="studies/ope/results/ope_coverage.json")
    parser.add_argument("--loggers", default="uniform,softmax_0.3,softmax_0.7")
    parser.add_argument("--table", action="store_true", help="print the markdown table of --out and exit")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads(Path(args.out).read_text())))
        return
    K, d, noise = 5, 3, 0.5
    rng = np.random.default_rng(0)
    theta = rng.normal(0, 1, (K, d))
    theta_hat = theta + rng.normal(0, 0.5, (K, d))
    phi = rng.normal(0, 1, (K, d))

    def target(X):
        return softmax(2.0 * X @ theta_hat.T)

    loggers = {
        "uniform": lambda X: np.full((X.shape[0], K), 1.0 / K),
        "softmax_0.3": lambda X: softmax(0.3 * X @ phi.T),  # mildly skewed logging
        "softmax_0.7": lambda X: softmax(0.7 * X @ phi.T),  # skewed: heavy-tailed weights
    }
    big = rng.normal(0, 1, (2_000_000, d))
    per_row = np.sum(target(big) * (big @ theta.T), axis=1)
    truth, truth_se = float(per_row.mean()), float(per_row.std() / np.sqrt(big.shape[0]))
    results = {}
    start = time.time()
    for name, logger in loggers.items():
        if name not in args.loggers.split(","):
            continue
        est = {"ips": [], "ips_normal": [], "ips_el_inf": [], "snips": [], "snips_normal": [], "dr": []}
        max_w, ess = [], []
        for _ in range(args.reps):
            X = rng.normal(0, 1, (args.n, d))
            probs = logger(X)
            a = (probs.cumsum(1) > rng.uniform(size=(args.n, 1))).argmax(1)
            r = np.sum(X * theta[a], axis=1) + noise * rng.normal(size=args.n)
            p = probs[np.arange(args.n), a]
            t = target(X)
            w = ope.importance_weights(a, p, t)
            max_w.append(w.max())
            ess.append(w.sum() ** 2 / np.sum(w**2) / args.n)
            est["ips"].append(ope.ips(a, r, p, t))  # interval="el", the default
            est["ips_normal"].append(ope.ips(a, r, p, t, interval="normal"))
            est["ips_el_inf"].append(ope.ips(a, r, p, t, weight_range=(0.0, np.inf)))  # no weight bound
            est["snips"].append(ope.snips(a, r, p, t))
            est["snips_normal"].append(ope.snips(a, r, p, t, interval="normal"))
            q = ope.ridge_reward_model(X, a, r, K, folds=2, seed=int(rng.integers(1 << 30)))
            est["dr"].append(ope.doubly_robust(a, r, p, t, q))
        rows = {}
        for key, es in est.items():
            v = np.array([e.value for e in es])
            lo, hi = np.array([e.lower for e in es]), np.array([e.upper for e in es])
            cover = (lo <= truth) & (truth <= hi)
            rows[key] = dict(
                coverage=float(cover.mean()),
                coverage_mc_se=float(np.sqrt(cover.mean() * (1 - cover.mean()) / args.reps)),
                bias=float(v.mean() - truth),
                bias_mc_se=float(v.std(ddof=1) / np.sqrt(args.reps)),
                rmse=float(np.sqrt(np.mean((v - truth) ** 2))),
                mean_interval_width=float(np.mean(hi - lo)),
            )
        rows["weights"] = dict(mean_max_weight=float(np.mean(max_w)), mean_relative_ess=float(np.mean(ess)))
        results[name] = rows
    out = dict(
        command=f"python studies/ope/ope_coverage.py --reps {args.reps} --n {args.n}",
        setup=dict(K=K, d=d, noise_sd=noise, n=args.n, reps=args.reps, target="softmax(2 x^T theta_hat)"),
        true_value=truth,
        true_value_mc_se=truth_se,
        results=results,
        seconds=round(time.time() - start, 1),
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"true value {truth:.4f} (MC s.e. {truth_se:.1e})")
    print(f"{'logging':11s} {'estimator':12s} {'coverage':>9s} {'bias':>9s} {'rmse':>8s} {'width':>8s}")
    for name, rows in results.items():
        print(
            f"{name:8s} weights: mean max {rows['weights']['mean_max_weight']:.1f}, relative ESS "
            f"{rows['weights']['mean_relative_ess']:.2f}"
        )
        for key, row in rows.items():
            if key == "weights":
                continue
            print(
                f"{name:11s} {key:12s} {row['coverage']:9.3f} {row['bias']:+9.4f} {row['rmse']:8.4f} "
                f"{row['mean_interval_width']:8.4f}"
            )


if __name__ == "__main__":
    main()
