#!/usr/bin/env python3
"""Issue 18 item 5: driftwatch's DLE against NannyML 0.13.1 itself.

golden.py computes driftwatch's DLE (ridge regressions of |error| and
error² on the imputed, standardised features, the prediction and its
square; NannyML's aggregation and sampling errors), and TestGolden holds
the Go code to golden.json (1e-9 relative). This script runs NannyML's own
DLE on the same rows (features f0..f2 with their missing values, the
prediction, the truth of the reference; the window as one analysis chunk)
and compares.

Tolerances, and why they are not exact:
  - estimated MAE and RMSE: within 20 % of the realized value (golden.json's
    realized, from the window's withheld truth); each tool's error against
    the realized value is printed too. Not exact: NannyML's learner is
    LightGBM (gradient-boosted trees, its defaults), driftwatch's a ridge
    regression (a closed form the monitor runs as one SQL expression per
    window; docs/monitor.md "Estimated performance"). The two agree within
    1 % (MAE) and 6 % (RMSE) when the window is like the reference; in
    noisy_feature_shift, where the error's scale grows as exp(0.4·f1) and
    f1 moves by 1.5, the ridge (linear in f1) follows less of the growth
    than the trees: driftwatch's MAE is 0.27 below the realized, NannyML's
    0.06 (13 % and 17 % apart, MAE and RMSE). That is a limit of the ridge,
    measured here, not hidden by the tolerance: see docs/monitor.md.
  - sampling errors: 1e-9 relative. Both are NannyML's closed forms on the
    reference's realized errors, independent of the learner.

NannyML goes into a venv of its own, not the default deps:

    python3 -m venv .deps/nannyml-venv
    .deps/nannyml-venv/bin/pip install nannyml==0.13.1 statsmodels
    .deps/nannyml-venv/bin/python monitor/dle/testdata/nannyml_check.py
"""

import json
import os
import sys
import warnings

# NannyML reports usage to a web service unless told not to.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml as nml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

assert nml.__version__ == "0.13.1", nml.__version__
warnings.filterwarnings("ignore")

REALIZED_SHARE = 0.20
SE_REL = 1e-9
FEATURES = ["f0", "f1", "f2"]

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "golden.json")) as f:
    cases = json.load(f)["cases"]


def frame(part):
    df = pd.DataFrame([{f: row.get(f, np.nan) for f in FEATURES} for row in part["features"]])
    df["pred"] = part["prediction"]
    if "truth" in part:
        df["y"] = part["truth"]
    return df


failed = False
for c in cases:
    ref, cur = frame(c["reference"]), frame(c["window"])
    est = nml.DLE(feature_column_names=FEATURES, y_pred="pred", y_true="y", metrics=["mae", "rmse"], chunk_number=1,
                  hyperparameters={"verbosity": -1})
    est.fit(ref)
    res = est.estimate(cur).filter(period="analysis").to_df()
    for m in ["mae", "rmse"]:
        got = float(res[(m, "value")].iloc[0])
        se = float(res[(m, "sampling_error")].iloc[0])
        want, realized = c["estimated"][m], c["realized"][m]
        d = abs(got - want["value"])
        ok = d <= REALIZED_SHARE * realized and abs(se - want["sampling_error"]) <= SE_REL * want["sampling_error"]
        failed |= not ok
        print(f"{c['name']} {m}: nannyml {got:.6f} (off the realized {realized:.6f} by {got - realized:+.4f}) "
              f"driftwatch {want['value']:.6f} (by {want['value'] - realized:+.4f}); |d| {d:.4f} = {100 * d / realized:.2f} % of the realized; "
              f"sampling error nannyml {se:.6g} driftwatch {want['sampling_error']:.6g} {'ok' if ok else 'DIFFERS'}")
sys.exit(1 if failed else 0)
