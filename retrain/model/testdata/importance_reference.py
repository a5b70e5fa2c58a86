#!/usr/bin/env python3
"""Reference permutation importance for retrain/model, with scikit-learn.

Run from the repository root after `bash scripts/deps.sh python`:

    .deps/venv/bin/python retrain/model/testdata/importance_reference.py

It writes retrain/model/testdata/importance_reference.json, which
importance_test.go reads. Data: n rows, x0 and x1 standard normal,
y = 3*x0 + 0.1*noise; a LinearRegression is fitted and
sklearn.inspection.permutation_importance is run with
scoring="neg_root_mean_squared_error" (so importances_mean is the mean rise in
RMSE). Shuffles differ between numpy and Go, so the Go test regenerates data
with the same law and compares within a tolerance that covers the sampling
noise of the shuffles (the expected importance of x0 is
sqrt(18 + 0.01) - 0.1 = 4.144, of x1 exactly 0 up to the fitted coefficient).
"""

import json
import os

import numpy as np
import sklearn
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LinearRegression

N = 20000
REPEATS = 10

rng = np.random.default_rng(15)
x = rng.standard_normal((N, 2))
y = 3 * x[:, 0] + 0.1 * rng.standard_normal(N)
m = LinearRegression().fit(x, y)
r = permutation_importance(m, x, y, scoring="neg_root_mean_squared_error",
                           n_repeats=REPEATS, random_state=0)
out = {
    "sklearn": sklearn.__version__,
    "n": N,
    "repeats": REPEATS,
    "coef": [float(c) for c in m.coef_],
    "importances_mean": [float(v) for v in r.importances_mean],
    "importances_std": [float(v) for v in r.importances_std],
}
path = os.path.join(os.path.dirname(__file__), "importance_reference.json")
with open(path, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
print(json.dumps(out, indent=2))
