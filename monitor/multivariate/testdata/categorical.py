#!/usr/bin/env python3
"""Reference numbers for the one-hot encoding of categorical features (STYLE.md rule 17).

A numeric x, y ~ N(0, 1) and a categorical c: "a" where x > 0, "b" where
x <= 0, except 20 % "c" and 0.5 % "rare" (below the 1 % share: no column),
and 5 % missing ("" here). In the current window of case
"association_flip" "a" gets the low x and "b" the high (every marginal
unchanged); in "no_change" nothing changes.

The encoding is written here without driftwatch's code: per categorical
feature the reference's categories of at least 1 % of its rows, the most
frequent first (then by name), at most 10, one-hot encoded by scikit-learn's
OneHotEncoder(categories=..., handle_unknown="ignore") (a category not kept,
and a missing value, are 0 in every column); then, as golden.py,
StandardScaler and PCA(n_components=0.65, svd_solver="full") on the
reference and the mean reconstruction error. Writes categorical.json;
TestGoldenCategorical compares to 1e-9 relative, and nannyml_check.py runs
NannyML on the same rows.

    .deps/venv/bin/python monitor/multivariate/testdata/categorical.py
"""

import json
import os
from collections import Counter

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import OneHotEncoder, StandardScaler

TOP, MIN_SHARE = 10, 0.01


def kept_categories(values):
    n = Counter(v for v in values if v != "")
    keep = [c for c in n if n[c] >= MIN_SHARE * len(values)]
    keep.sort(key=lambda c: (-n[c], c))
    return keep[:TOP]


def one_hot(ref_cats, cats):
    enc = OneHotEncoder(categories=[kept_categories(ref_cats)], handle_unknown="ignore", sparse_output=False)
    enc.fit(np.array(ref_cats, dtype=object).reshape(-1, 1))
    return enc.transform(np.array(cats, dtype=object).reshape(-1, 1)), list(enc.categories_[0])


def draw(rng, n, flip):
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    u = rng.random(n)
    c = np.where((x > 0) != flip, "a", "b").astype(object)
    c[u < 0.20] = "c"
    c[(u >= 0.20) & (u < 0.205)] = "rare"
    c[(u >= 0.205) & (u < 0.255)] = ""
    return np.column_stack([x, y]), list(c)


def case(name, rng, n, flip):
    ref_num, ref_cat = draw(rng, n, False)
    cur_num, cur_cat = draw(rng, n, flip)
    ref_oh, kept = one_hot(ref_cat, ref_cat)
    cur_oh, _ = one_hot(ref_cat, cur_cat)
    ref, cur = np.hstack([ref_num, ref_oh]), np.hstack([cur_num, cur_oh])
    scaler = StandardScaler().fit(ref)
    pca = PCA(n_components=0.65, svd_solver="full").fit(scaler.transform(ref))

    def err(x):
        z = scaler.transform(x)
        return float(np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1).mean())

    return {
        "name": name,
        "share": 0.65,
        "reference": ref_num.tolist(),
        "current": cur_num.tolist(),
        "reference_categories": ref_cat,
        "current_categories": cur_cat,
        "kept": kept,
        "components": int(pca.n_components_),
        "ratio": pca.explained_variance_ratio_.tolist(),
        "reference_error": err(ref),
        "current_error": err(cur),
    }


if __name__ == "__main__":
    import sklearn

    assert np.__version__ == "2.2.6", np.__version__
    assert sklearn.__version__ == "1.6.1", sklearn.__version__
    rng = np.random.default_rng(184)
    cases = [case("association_flip", rng, 600, True), case("no_change", rng, 600, False)]
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "categorical.json"), "w") as f:
        json.dump({"generator": "categorical.py", "cases": cases}, f)
    for c in cases:
        print(c["name"], c["kept"], c["components"], c["reference_error"], c["current_error"])
