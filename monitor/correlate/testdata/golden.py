#!/usr/bin/env python3
"""Reference numbers for driftwatch's monitor/correlate package (STYLE.md rule 17).

Computes Pearson, Spearman and the lagged cross-correlation with
numpy 2.2.6 / scipy 1.15.3 on seeded cases and writes golden.json next to
this file; monitor/correlate's tests read it and compare values to 1e-9
relative and p-values to 1e-6 absolute.

    .deps/venv/bin/python monitor/correlate/testdata/golden.py

(`bash scripts/deps.sh python` creates .deps/venv.) Definitions:

- pearson: scipy.stats.pearsonr(x, y) (exact Beta p-value, two-sided).
- spearman: scipy.stats.spearmanr(x, y) (average ranks, t p-value).
- missing values (NaN, written to JSON as null) are dropped pairwise first.
- lag L: x[0:n-L] against y[L:n] (the business series follows by L buckets).
- fewer than 3 usable pairs -> "insufficient"; a constant series (scipy
  returns NaN with ConstantInputWarning) -> "undefined".
"""

import json
import math
import os
import warnings

import numpy as np
import scipy
from scipy import stats

assert np.__version__ == "2.2.6", np.__version__
assert scipy.__version__ == "1.15.3", scipy.__version__

HERE = os.path.dirname(os.path.abspath(__file__))


def clean(x, y):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def expect(fn, x, y):
    x, y = clean(x, y)
    if len(x) < 3:
        return {"error": "insufficient"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fn(x, y)
    r, p = float(res.statistic), float(res.pvalue)
    if math.isnan(r):
        return {"error": "undefined"}
    return {"value": r, "pvalue": p, "n": int(len(x))}


def both(x, y):
    return {"pearson": expect(stats.pearsonr, x, y), "spearman": expect(stats.spearmanr, x, y)}


def js(v):
    return [None if not np.isfinite(a) else float(a) for a in v]


def main():
    rng = np.random.default_rng(20261127)
    cases = []

    def add(name, x, y):
        cases.append({"name": name, "x": js(x), "y": js(y), "expected": both(x, y)})

    x = rng.normal(size=50)
    add("independent_normal", x, rng.normal(size=50))
    add("linear_noisy", x, 2 * x + rng.normal(scale=0.5, size=50))
    add("negative", x, -x + rng.normal(scale=2, size=50))
    add("monotone_nonlinear", x, np.exp(x))
    add("perfect", [1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    add("perfect_negative", [1, 2, 3, 4], [4, 3, 2, 1])
    add("three_points", [1.0, 2.0, 4.0], [1.0, 3.0, 2.0])
    xt = np.round(rng.normal(size=200), 1)
    add("ties", xt, np.round(xt + rng.normal(size=200), 0))
    xm = rng.normal(size=40)
    ym = xm + rng.normal(size=40)
    xm[[3, 7, 11]] = np.nan
    ym[[7, 20]] = np.nan
    add("missing_pairwise", xm, ym)
    add("two_usable", [1.0, np.nan, 2.0, 3.0], [1.0, 2.0, np.nan, 5.0])
    add("constant_x", [3, 3, 3, 3, 3], [1, 2, 3, 4, 5])
    add("constant_after_deletion", [1, 2, 2, 2, 2], [np.nan, 1, 2, 3, 4])
    add("large_n", rng.normal(size=5000), rng.normal(size=5000))
    big = rng.normal(size=5000)
    add("large_n_correlated", big, 0.05 * big + rng.normal(size=5000))
    add("offset_scale", 1e6 + rng.normal(size=30) * 1e-3, rng.normal(size=30))

    # A business metric that follows accuracy with a lag of two buckets:
    # 96 hourly buckets of accuracy (a slow random walk around 0.9) and
    # revenue[t] = 1000 + 4000 * (accuracy[t-2] - 0.9) + noise; two missing
    # buckets in each series.
    n, lag_true, max_lag = 96, 2, 6
    acc = 0.9 + np.cumsum(rng.normal(scale=0.01, size=n))
    acc = 0.9 + (acc - acc.mean())
    revenue = 1000 + rng.normal(scale=8, size=n)
    revenue[lag_true:] += 4000 * (acc[: n - lag_true] - 0.9)
    acc[[10, 50]] = np.nan
    revenue[[30, 31]] = np.nan
    lagged = {"name": "revenue_follows_accuracy_by_2", "model": js(acc), "business": js(revenue),
              "max_lag": max_lag, "best_lag": None, "lags": []}
    best, best_abs = None, -1.0
    for lag in range(max_lag + 1):
        e = both(acc[: n - lag], revenue[lag:])
        lagged["lags"].append({"lag": lag, "expected": e})
        r = e["pearson"].get("value")
        if r is not None and abs(r) > best_abs:
            best, best_abs = lag, abs(r)
    lagged["best_lag"] = best
    assert best == lag_true, best

    # The p-value function on its own, over the whole range the monitor can
    # ask for: from 3 to 100,000 pairs, r from 0 to within 1e-9 of 1, so
    # both branches of the incomplete beta's continued fraction and p-values
    # from 1 down to far below 1e-300. scipy computes it another way, as
    # Student's t survival function: p = 2 t.sf(|r| sqrt(df / (1 - r^2)), df).
    pvalues = []
    for n in (3, 4, 5, 10, 30, 100, 1000, 5000, 100000):
        df = n - 2
        for r in (0.0, 1e-6, 0.001, 0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999, 0.999999, 1 - 1e-9):
            t = abs(r) * math.sqrt(df / ((1 - r) * (1 + r)))
            pvalues.append({"n": n, "r": r, "pvalue": float(2 * stats.t.sf(t, df))})

    out = {"scipy": scipy.__version__, "numpy": np.__version__, "cases": cases, "lagged": [lagged],
           "pvalues": pvalues}
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
