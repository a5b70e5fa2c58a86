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
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json"), "w") as f:
    json.dump({"cases": cases}, f)
