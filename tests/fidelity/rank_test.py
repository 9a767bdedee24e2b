"""The metric judge's statistics as an independent implementation computes them.

For a fixed table of sample pairs, prints one JSON document on stdout:

- the Mann-Whitney U statistic and p-value from ``scipy.stats.mannwhitneyu`` for each alternative
  and each method that applies (``auto``, ``asymptotic``, and ``exact`` for samples small enough
  for SciPy's exact distribution), with the method ``auto`` chose;
- the Hodges-Lehmann shift ``x - y`` from numpy (the median of all pairwise differences) and its
  asymptotic interval found as R's ``wilcox.test(conf.int = TRUE)`` finds it: the normal
  statistic of ``x - mu`` against ``y`` (ranks with ties, tie and continuity corrections) solved
  for ``mu`` with ``scipy.optimize.brentq``, each end also snapped to the nearest pairwise
  difference.

Samples go out as the bit patterns of their float64 values, so both sides read the same numbers.
Run by tests/tests/rank_test_scipy.rs with the project's virtualenv.
"""

import json
import struct
import sys

import numpy as np
import scipy
from scipy import optimize, stats

CONFIDENCE = 0.98
# SciPy's exact distribution takes time quadratic in n1 * n2; beyond this it is not asked for.
EXACT_MAX_PAIRS = 2500


def bits(values):
    return [struct.unpack("<Q", struct.pack("<d", float(v)))[0] for v in values]


def cases():
    rng = np.random.default_rng(20261201)
    one_to_ten = np.arange(1.0, 11.0)
    yield "equal samples", one_to_ten, one_to_ten.copy()
    yield "all one value", np.full(10, 5.0), np.full(12, 5.0)
    yield "constant against constant", np.full(10, 5.0), np.full(12, 0.0)
    yield "shifted up", rng.normal(2.0, 1.0, 30), rng.normal(0.0, 1.0, 30)
    yield "shifted down", rng.normal(-1.5, 1.0, 40), rng.normal(0.0, 1.0, 35)
    yield "noisy overlapping", rng.normal(0.0, 1.0, 50), rng.normal(0.2, 1.0, 60)
    yield "integer ties", rng.integers(0, 5, 25).astype(float), rng.integers(1, 6, 30).astype(float)
    yield "small with ties", np.array([1.0, 2.0, 2.0, 3.0]), np.array([2.0, 3.0, 3.0, 4.0, 5.0])
    yield "one tie across samples", np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([5.0, 6.0, 7.0, 8.0, 9.0])
    yield "SciPy's diabetes example", np.array([19.0, 22, 16, 29, 24]), np.array([20.0, 11, 17, 12])
    yield "one value each", np.array([1.0]), np.array([2.0])
    yield "one against twenty", np.array([3.5]), rng.normal(3.0, 1.0, 20)
    yield "exact 8 against 8", rng.normal(0.5, 1.0, 8), rng.normal(0.0, 1.0, 8)
    yield "exact separated 8 against 8", rng.normal(10.0, 1.0, 8), rng.normal(0.0, 1.0, 8)
    yield "exact 8 against 50", rng.normal(0.8, 1.0, 8), rng.normal(0.0, 1.0, 50)
    yield "exact 3 against 200", rng.normal(-0.5, 1.0, 3), rng.normal(0.0, 1.0, 200)
    yield "9 against 9", rng.normal(1.0, 1.0, 9), rng.normal(0.0, 1.0, 9)
    yield "12 against 15", rng.normal(0.7, 1.0, 12), rng.normal(0.0, 1.0, 15)
    yield "20 against 25", rng.normal(0.4, 1.0, 20), rng.normal(0.0, 1.0, 25)
    yield "exact with ties", np.array([1.0, 2.0, 2.0, 3.0, 4.0]), np.array([2.0, 5.0, 6.0, 7.0])
    yield "latency p99 per minute", rng.normal(0.92, 0.05, 60), rng.normal(0.30, 0.04, 60)
    yield "large, 10 % slower", rng.lognormal(np.log(0.11), 0.3, 2000), rng.lognormal(np.log(0.10), 0.3, 1500)
    yield "large, far tail", rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 300)
    yield "mixed signs and zeros", np.array([-2.5, -0.0, 0.0, 1.25, 3.0, -1.0, 0.5]), np.array([-3.0, -1.0, 0.0, 2.0])
    yield "large magnitude, small spread", rng.normal(1e6 + 3.0, 2.0, 40), rng.normal(1e6, 2.0, 45)
    yield "rounded counts", np.round(rng.normal(100, 10, 80)), np.round(rng.normal(97, 10, 70))


def wilcoxon_statistic(mu, x, y):
    """R's wdiff: the corrected normal statistic of x - mu against y."""
    n1, n2 = len(x), len(y)
    ranks = stats.rankdata(np.concatenate([x - mu, y]))
    _, tie_sizes = np.unique(ranks, return_counts=True)
    dz = ranks[:n1].sum() - n1 * (n1 + 1) / 2 - n1 * n2 / 2
    correction = np.sign(dz) * 0.5
    n = n1 + n2
    sigma = np.sqrt(n1 * n2 / 12 * ((n + 1) - (tie_sizes**3 - tie_sizes).sum() / (n * (n - 1))))
    return (dz - correction) / sigma


def interval_end(quantile, x, y, differences):
    """R's root(): the clamp to the extreme differences, else the solver."""
    mu_min, mu_max = differences.min(), differences.max()
    if mu_min == mu_max:
        # Every difference is the same (R stops here: all observations tied at that shift).
        return mu_min
    at_min = wilcoxon_statistic(mu_min, x, y) - quantile
    at_max = wilcoxon_statistic(mu_max, x, y) - quantile
    if at_min <= 0:
        return mu_min
    if at_max >= 0:
        return mu_max
    scale = max(abs(mu_min), abs(mu_max), mu_max - mu_min)
    return optimize.brentq(
        lambda mu: wilcoxon_statistic(mu, x, y) - quantile, mu_min, mu_max, xtol=scale * 1e-15, rtol=8.9e-16, maxiter=500
    )


def nearest(value, differences):
    return float(differences.flat[np.abs(differences - value).argmin()])


def shift(x, y):
    differences = np.subtract.outer(x, y)
    z = stats.norm.ppf(1 - (1 - CONFIDENCE) / 2)
    lower = interval_end(z, x, y, differences)
    upper = interval_end(-z, x, y, differences)
    return {
        "confidence": CONFIDENCE,
        "estimate": float(np.median(differences)),
        "lower_root": float(lower),
        "upper_root": float(upper),
        "lower": nearest(lower, differences),
        "upper": nearest(upper, differences),
        "spread": float(differences.max() - differences.min()),
    }


def auto_method(x, y):
    """The method SciPy's 'auto' picks (scipy.stats._mannwhitneyu._mwu_choose_method)."""
    if len(x) > 8 and len(y) > 8:
        return "asymptotic"
    values = np.concatenate([x, y])
    return "asymptotic" if len(np.unique(values)) < len(values) else "exact"


def tests(x, y):
    methods = ["auto", "asymptotic"]
    if len(x) * len(y) <= EXACT_MAX_PAIRS:
        methods.append("exact")
    results = []
    for alternative in ["two-sided", "greater", "less"]:
        for method in methods:
            result = stats.mannwhitneyu(x, y, alternative=alternative, method=method)
            results.append(
                {
                    "alternative": alternative,
                    "method": method,
                    "used": auto_method(x, y) if method == "auto" else method,
                    "u": float(result.statistic),
                    "p_value": float(result.pvalue),
                }
            )
    return results


def main():
    table = []
    for name, x, y in cases():
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        table.append({"name": name, "x": bits(x), "y": bits(y), "tests": tests(x, y), "shift": shift(x, y)})
    json.dump({"scipy": scipy.__version__, "cases": table}, sys.stdout)


if __name__ == "__main__":
    main()
