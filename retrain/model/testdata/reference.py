#!/usr/bin/env python3
"""Reference numbers for retrain/model, computed with numpy and scikit-learn.

Run from the repository root after `bash scripts/deps.sh python`:

    .deps/venv/bin/python retrain/model/testdata/reference.py

It writes retrain/model/testdata/reference.json, which reference_test.go
reads. The data set is not stored: both this script and the Go test
generate it from the same splitmix64 stream (only integer arithmetic,
exact in both languages; normals by Box-Muller, equal to the last bit or
two), so the file stays small.

The preprocessing is written out in numpy to the package's documented rules
(standardise numeric features with train mean and population std, missing
-> 0 plus a missing indicator for features missing in train, one-hot of the
top-K categories by count then name plus an "other" column, missing
categorical -> no column set), and scikit-learn fits:

  LogisticRegression(penalty="l2", C=1.0, solver="lbfgs", fit_intercept=True)
  Ridge(alpha=1.0)

lbfgs runs with a tight tolerance so the reference is the optimum of the
objective, not an early stop; newton-cholesky is fitted too as a check of
the reference itself.
"""

import json
import math
import os
import sys

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

MASK = (1 << 64) - 1
SEED = 20240601
N_ROWS = 20000
N_TRAIN = 15000
TOP_K = 20

COLORS = ["red", "green", "blue", "black", "white"]
COLOR_EFFECT = [0.5, -0.3, 0.0, 0.2, -0.4]
BETA = [0.8, -0.5, 0.3, 0.0, 0.2, 0.4, -0.3, 0.1, 0.5, -0.2]
MISSING = [0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.1, 0.3, 0.3]


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next() >> 11) * (1.0 / 9007199254740992.0)

    def normal(self):
        u1, u2 = self.uniform(), self.uniform()
        return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


def generate():
    """Rows as (numeric dict, categorical dict, label, value); the Go test
    mirrors this function draw for draw (generate in reference_test.go)."""
    rng = SplitMix64(SEED)
    rows = []
    for _ in range(N_ROWS):
        num, cat = {}, {}
        z = -0.3
        for j in range(10):
            s = rng.normal()
            miss = rng.uniform() < MISSING[j]
            z += BETA[j] * s
            if not miss:
                num["x%d" % j] = (j - 3) + (1 + 0.5 * j) * s
        c = int(rng.uniform() * 5)
        if not rng.uniform() < 0.05:
            cat["color"] = COLORS[c]
        z += COLOR_EFFECT[c]
        u = rng.uniform()
        k = int(30 * u * u)
        if not rng.uniform() < 0.05:
            cat["city"] = "c%02d" % k
        z += 0.6 * math.cos(k)
        label = "yes" if rng.uniform() < 1.0 / (1.0 + math.exp(-z)) else "no"
        value = 2.0 * z + 1.0 + 0.5 * rng.normal()
        rows.append((num, cat, label, value))
    return rows


def fit_preprocessor(rows):
    names = sorted({k for r in rows for k in r[0]})
    numeric = []
    for n in names:
        v = np.array([r[0][n] for r in rows if n in r[0]])
        std = v.std()  # ddof=0
        numeric.append(
            {
                "name": n,
                "mean": float(v.mean()),
                "std": float(std if std > 0 else 1.0),
                "indicator": len(v) < len(rows),
            }
        )
    categorical = []
    for n in sorted({k for r in rows for k in r[1]}):
        counts = {}
        for r in rows:
            if n in r[1]:
                counts[r[1][n]] = counts.get(r[1][n], 0) + 1
        cats = sorted(counts, key=lambda c: (-counts[c], c))[:TOP_K]
        categorical.append({"name": n, "categories": cats})
    return numeric, categorical


def columns(numeric, categorical):
    cols = [f["name"] for f in numeric]
    cols += [f["name"] + ":missing" for f in numeric if f["indicator"]]
    for f in categorical:
        cols += [f["name"] + "=" + c for c in f["categories"]] + [f["name"] + ":other"]
    return cols


def transform(rows, numeric, categorical):
    cols = columns(numeric, categorical)
    index = {c: i for i, c in enumerate(cols)}
    X = np.zeros((len(rows), len(cols)))
    for i, (num, cat, _, _) in enumerate(rows):
        for f in numeric:
            if f["name"] in num:
                X[i, index[f["name"]]] = (num[f["name"]] - f["mean"]) / f["std"]
            elif f["indicator"]:
                X[i, index[f["name"] + ":missing"]] = 1.0
        for f in categorical:
            if f["name"] not in cat:
                continue
            v = cat[f["name"]]
            key = f["name"] + "=" + v if v in f["categories"] else f["name"] + ":other"
            X[i, index[key]] = 1.0
    return X


def floats(a):
    return [float(x) for x in np.asarray(a).ravel()]


def main():
    rows = generate()
    train, test = rows[:N_TRAIN], rows[N_TRAIN:]
    numeric, categorical = fit_preprocessor(train)
    Xtr, Xte = transform(train, numeric, categorical), transform(test, numeric, categorical)
    ytr = np.array([r[2] == "yes" for r in train], dtype=float)
    yte = np.array([r[2] == "yes" for r in test], dtype=float)
    vtr = np.array([r[3] for r in train])
    vte = np.array([r[3] for r in test])

    lr = LogisticRegression(penalty="l2", C=1.0, solver="lbfgs", fit_intercept=True, tol=1e-12, max_iter=100000)
    lr.fit(Xtr, ytr)
    nc = LogisticRegression(penalty="l2", C=1.0, solver="newton-cholesky", fit_intercept=True, tol=1e-12, max_iter=1000)
    nc.fit(Xtr, ytr)
    solver_gap = float(np.max(np.abs(np.r_[lr.coef_.ravel(), lr.intercept_] - np.r_[nc.coef_.ravel(), nc.intercept_])))
    print("lbfgs vs newton-cholesky max |diff| =", solver_gap, file=sys.stderr)
    p = lr.predict_proba(Xte)[:, 1]

    # A weaker challenger-like model for the paired bootstrap: numeric only.
    nn = len(numeric)
    weak = LogisticRegression(C=1.0, solver="lbfgs", tol=1e-12, max_iter=100000).fit(Xtr[:, :nn], ytr)
    pw = weak.predict_proba(Xte[:, :nn])[:, 1]

    rg = Ridge(alpha=1.0).fit(Xtr, vtr)
    v = rg.predict(Xte)
    vw = Ridge(alpha=1.0).fit(Xtr[:, :nn], vtr).predict(Xte[:, :nn])

    def cls_metrics(y, q):
        hard = (q >= 0.5).astype(float)
        return {
            "roc_auc": roc_auc_score(y, q),
            "log_loss": log_loss(y, q),
            "brier": brier_score_loss(y, q),
            "accuracy": accuracy_score(y, hard),
            "precision": precision_score(y, hard, zero_division=0),
            "recall": recall_score(y, hard, zero_division=0),
            "f1": f1_score(y, hard, zero_division=0),
        }

    def reg_metrics(y, q):
        return {
            "rmse": root_mean_squared_error(y, q),
            "mae": mean_absolute_error(y, q),
            "r2": r2_score(y, q),
        }

    # Explicit paired resamples: the Go test turns the indices into counts
    # and must get the same differences from its weighted evaluation.
    brng = np.random.default_rng(7)
    resamples = []
    for _ in range(3):
        idx = brng.integers(0, len(yte), len(yte))
        d = {}
        for m, f in [("roc_auc", roc_auc_score), ("log_loss", log_loss), ("brier", brier_score_loss)]:
            d[m] = f(yte[idx], p[idx]) - f(yte[idx], pw[idx])
        for m, q in reg_metrics(vte[idx], v[idx]).items():
            d[m] = q - reg_metrics(vte[idx], vw[idx])[m]
        resamples.append({"indices": [int(i) for i in idx], "diff_strong_minus_weak": d})

    # A full percentile bootstrap (B = 2000) of AUC(strong) − AUC(weak),
    # which the Go bootstrap must match up to Monte Carlo error.
    B = 2000
    diffs = np.empty(B)
    for b in range(B):
        idx = brng.integers(0, len(yte), len(yte))
        diffs[b] = roc_auc_score(yte[idx], p[idx]) - roc_auc_score(yte[idx], pw[idx])
    boot = {
        "resamples": B,
        "lo": float(np.percentile(diffs, 2.5)),
        "hi": float(np.percentile(diffs, 97.5)),
        "se": float(diffs.std(ddof=1)),
    }

    prng = np.random.default_rng(11)
    pvals = prng.normal(size=37)
    percentiles = {
        "values": floats(pvals),
        "q": [0, 2.5, 50, 97.5, 100, 33.3],
        "want": floats(np.percentile(pvals, [0, 2.5, 50, 97.5, 100, 33.3])),
    }

    # Tie-heavy ROC AUC cases.
    trng = np.random.default_rng(3)
    ties = []

    def tie(name, y, s):
        y, s = np.asarray(y, dtype=float), np.asarray(s, dtype=float)
        ties.append({"name": name, "y": floats(y), "score": floats(s), "auc": float(roc_auc_score(y, s))})

    tie("sklearn_doc", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    tie("all_tied", [0, 1, 0, 1, 1], [0.5] * 5)
    y = trng.integers(0, 2, 1000)
    tie("rounded_scores", y, np.round(np.clip(0.3 * y + trng.normal(0.35, 0.2, 1000), 0, 1), 1))
    y = trng.integers(0, 2, 500)
    tie("integer_scores", y, trng.integers(0, 4, 500) + y * trng.integers(0, 2, 500))
    tie("tie_at_boundary", [0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.7, 0.7, 0.9, 0.9])
    tie("inverted", [1, 1, 0, 0], [0.1, 0.2, 0.3, 0.3])

    out = {
        "generator": {"seed": SEED, "rows": N_ROWS, "train": N_TRAIN, "top_k": TOP_K},
        "versions": {"numpy": np.__version__, "sklearn": sklearn.__version__},
        "preprocessor": {"numeric": numeric, "categorical": categorical},
        "columns": columns(numeric, categorical),
        "logistic": {
            "coef": floats(lr.coef_),
            "intercept": float(lr.intercept_[0]),
            "newton_cholesky_coef": floats(nc.coef_),
            "newton_cholesky_intercept": float(nc.intercept_[0]),
            "newton_cholesky_max_abs_diff": solver_gap,
            "test_proba": floats(p),
            "weak_test_proba": floats(pw),
            "test_metrics": cls_metrics(yte, p),
        },
        "ridge": {
            "coef": floats(rg.coef_),
            "intercept": float(rg.intercept_),
            "test_pred": floats(v),
            "weak_test_pred": floats(vw),
            "test_metrics": reg_metrics(yte * 0 + vte, v),
        },
        "test_labels": floats(yte),
        "test_values": floats(vte),
        "resamples": resamples,
        "bootstrap_auc": boot,
        "percentiles": percentiles,
        "auc_ties": ties,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", path, os.path.getsize(path), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
