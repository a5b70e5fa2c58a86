#!/usr/bin/env python3
"""Reference numbers for driftwatch's monitor/multivariate package (STYLE.md rule 17).

scikit-learn 1.6.1 / numpy 2.2.6: StandardScaler then PCA(n_components=0.65,
svd_solver="full") fitted on the reference, per-row reconstruction error =
numpy.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1) in the
standardised space, as NannyML's DataReconstructionDriftCalculator. Writes
golden.json next to this file; TestGoldenReconstruction compares to 1e-9 relative.

    .deps/venv/bin/python monitor/multivariate/testdata/golden.py
"""

import json
import os

import numpy as np
import sklearn
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

assert np.__version__ == "2.2.6", np.__version__
assert sklearn.__version__ == "1.6.1", sklearn.__version__


def case(name, rng, n, rho_ref, rho_cur, extra, share):
    def draw(rho):
        x = rng.standard_normal(n)
        y = rho * x + np.sqrt(1 - rho * rho) * rng.standard_normal(n)
        cols = [x, y] + [rng.standard_normal(n) * (k + 1) + k for k in range(extra)]
        return np.column_stack(cols)

    ref, cur = draw(rho_ref), draw(rho_cur)
    scaler = StandardScaler().fit(ref)
    pca = PCA(n_components=share, svd_solver="full").fit(scaler.transform(ref))

    def err(x):
        z = scaler.transform(x)
        return float(np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1).mean())

    return {
        "name": name,
        "share": share,
        "reference": ref.tolist(),
        "current": cur.tolist(),
        "components": int(pca.n_components_),
        "ratio": pca.explained_variance_ratio_.tolist(),
        "reference_error": err(ref),
        "current_error": err(cur),
    }


rng = np.random.default_rng(18)
cases = [
    case("correlation_flip", rng, 400, 0.9, -0.9, 1, 0.65),
    case("no_change", rng, 300, 0.6, 0.6, 3, 0.65),
    case("five_columns_share_0.8", rng, 250, 0.3, 0.3, 3, 0.8),
]


def classifier(c, folds):
    """Domain classifier: reference rows labelled 0 and current rows 1,
    interleaved (row 2i reference, 2i+1 current); columns plus the pairwise
    products of the centred columns (means over all rows); per fold
    (row i in fold i % folds) StandardScaler on the training rows and
    LogisticRegression(C=1); mean of the folds' roc_auc_score."""
    ref, cur = np.array(c["reference"]), np.array(c["current"])
    x = np.empty((len(ref) + len(cur), ref.shape[1]))
    x[0::2], x[1::2] = ref, cur
    y = np.zeros(len(x))
    y[1::2] = 1
    m = x.mean(axis=0)
    d = x.shape[1]
    prods = [(x[:, a] - m[a]) * (x[:, b] - m[b]) for a in range(d) for b in range(a + 1, d)]
    x = np.column_stack([x] + prods)
    aucs = []
    for f in range(folds):
        val = np.arange(len(x)) % folds == f
        sc = StandardScaler().fit(x[~val])
        lr = LogisticRegression(C=1.0, tol=1e-12, max_iter=100000).fit(sc.transform(x[~val]), y[~val])
        aucs.append(roc_auc_score(y[val], lr.predict_proba(sc.transform(x[val]))[:, 1]))
    sc = StandardScaler().fit(x)
    lr = LogisticRegression(C=1.0, tol=1e-12, max_iter=100000).fit(sc.transform(x), y)
    c["folds"] = folds
    c["cv_auc"] = float(np.mean(aucs))
    c["coef"] = lr.coef_[0].tolist()


for c in cases:
    classifier(c, 5)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json"), "w") as f:
    json.dump({"cases": cases}, f)
