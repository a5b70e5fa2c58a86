#!/usr/bin/env python3
"""Reference numbers for driftwatch's monitor/dle package (STYLE.md rule 17).

Seeded regression data with missing values; DLE with driftwatch's learner,
computed with scikit-learn 1.6.1 (SimpleImputer(mean) + StandardScaler +
Ridge(alpha=1.0) on the numeric features, the prediction and its square,
targets |y - yhat| and (y - yhat)^2), predictions clipped at 0 and NannyML
0.13.1's DLE aggregation and sampling errors (transcribed from
nannyml/performance_estimation/direct_loss_estimation/metrics.py and
nannyml/sampling_error/regression.py):

    .deps/venv/bin/python monitor/dle/testdata/golden.py
"""

import json
import os

import numpy as np
import sklearn
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

assert np.__version__ == "2.2.6", np.__version__
assert sklearn.__version__ == "1.6.1", sklearn.__version__

HERE = os.path.dirname(os.path.abspath(__file__))
FEATURES = ["f0", "f1", "f2"]


def draw(rng, n, mu1):
    x = rng.normal(0, 1, (n, 3))
    x[:, 1] += mu1
    truth = 50 + 10 * x[:, 0] + 5 * x[:, 2] + rng.normal(0, 1, n) * np.exp(0.4 * x[:, 1])
    pred = 50 + 10 * x[:, 0] + 5 * x[:, 2]
    missing = rng.random((n, 3)) < 0.05
    xm = np.where(missing, np.nan, x)
    return xm, pred, truth


def design(xm, pred):
    return np.column_stack([xm, pred, pred ** 2])


def case(name, rng, n_ref, n_cur, shift):
    x_ref, p_ref, y_ref = draw(rng, n_ref, 0.0)
    x_cur, p_cur, y_cur = draw(rng, n_cur, shift)
    imp = SimpleImputer(strategy="mean").fit(design(x_ref, p_ref))
    sc = StandardScaler().fit(imp.transform(design(x_ref, p_ref)))
    z_ref = sc.transform(imp.transform(design(x_ref, p_ref)))
    z_cur = sc.transform(imp.transform(design(x_cur, p_cur)))
    e_ref = y_ref - p_ref
    abs_model = Ridge(alpha=1.0).fit(z_ref, np.abs(e_ref))
    sq_model = Ridge(alpha=1.0).fit(z_ref, e_ref ** 2)
    abs_hat = np.maximum(0, abs_model.predict(z_cur))
    sq_hat = np.maximum(0, sq_model.predict(z_cur))
    n = n_cur
    mae, rmse = float(np.mean(abs_hat)), float(np.sqrt(np.mean(sq_hat)))
    mae_se = float(np.std(np.abs(e_ref)) / np.sqrt(n))
    sq = e_ref ** 2
    rmse_se = float(np.sqrt(np.std(sq) ** 2 / (4 * n * np.mean(sq))))

    def feats(xm):
        return [{f: float(v) for f, v in zip(FEATURES, row) if not np.isnan(v)} for row in xm]
    return {
        "name": name,
        "reference": {"features": feats(x_ref), "prediction": p_ref.tolist(), "truth": y_ref.tolist()},
        "window": {"features": feats(x_cur), "prediction": p_cur.tolist()},
        "estimated": {
            "mae": {"value": mae, "sampling_error": mae_se, "lower": max(0, mae - 3 * mae_se), "upper": mae + 3 * mae_se},
            "rmse": {"value": rmse, "sampling_error": rmse_se, "lower": max(0, rmse - 3 * rmse_se), "upper": rmse + 3 * rmse_se},
        },
        "realized": {"mae": float(np.mean(np.abs(y_cur - p_cur))), "rmse": float(np.sqrt(np.mean((y_cur - p_cur) ** 2)))},
    }


def main():
    rng = np.random.default_rng(18)
    cases = [case("no_shift", rng, 3000, 1000, 0.0), case("noisy_feature_shift", rng, 3000, 1000, 1.5)]
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump({"cases": cases}, f)
        f.write("\n")
    for c in cases:
        print(c["name"], {m: round(v["value"], 4) for m, v in c["estimated"].items()}, c["realized"])


if __name__ == "__main__":
    main()
