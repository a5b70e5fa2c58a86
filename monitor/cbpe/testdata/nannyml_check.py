#!/usr/bin/env python3
"""Issue 18 item 5: driftwatch's CBPE against NannyML 0.13.1 itself.

golden.py transcribes NannyML's CBPE functions, and TestGolden* hold the Go
code to golden.json (values and sampling errors 1e-9, estimated ROC AUC
1e-6). This script runs NannyML's own CBPE estimator on the same rows (the
reference fitted, the window as one analysis chunk) and compares its
estimates, sampling errors and confidence bounds with golden.json's.

Tolerances:
  - values, bounds: 1e-6 absolute. The transcription is NannyML's code;
    what may differ is floating-point order (pandas sums) and the estimated
    ROC AUC's rounding of the cumulative sums to 5 decimals (as in NannyML),
    which moves the AUC by at most about 1e-6.
  - sampling errors: 1e-9 absolute (the same closed forms on the reference).
  - the calibration decision must be NannyML's: golden.json's
    needs_calibration uses driftwatch's folds (10, dealt in (score, truth)
    order) where NannyML uses StratifiedShuffleSplit(random_state=42); a
    case where the two decide differently is reported as such, and its
    estimates are not compared (they would rest on different calibrations).

NannyML goes into a venv of its own, not the default deps:

    python3 -m venv .deps/nannyml-venv
    .deps/nannyml-venv/bin/pip install nannyml==0.13.1 statsmodels
    .deps/nannyml-venv/bin/python monitor/cbpe/testdata/nannyml_check.py

(nannyml 0.13.1 imports statsmodels without requiring it.)
"""

import json
import os
import sys
import warnings

# NannyML reports usage to a web service unless told not to.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml as nml  # noqa: E402
from nannyml.calibration import NoopCalibrator  # noqa: E402
import numpy as np  # noqa: E402,F401
import pandas as pd  # noqa: E402

assert nml.__version__ == "0.13.1", nml.__version__
warnings.filterwarnings("ignore")

VALUE_TOL = 1e-6
SE_TOL = 1e-9
METRICS = ["roc_auc", "f1", "precision", "recall", "accuracy"]

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "golden.json")) as f:
    golden = json.load(f)

failed = False


def compare(name, est, res, needs):
    """res: NannyML's analysis chunk; est: golden.json's estimated."""
    global failed
    for m in METRICS:
        want = est[m]
        got = {
            "value": float(res[(m, "value")].iloc[0]),
            "sampling_error": float(res[(m, "sampling_error")].iloc[0]),
            "lower": float(res[(m, "lower_confidence_boundary")].iloc[0]),
            "upper": float(res[(m, "upper_confidence_boundary")].iloc[0]),
        }
        diffs = {k: abs(got[k] - want[k]) for k in got}
        ok = diffs["value"] <= VALUE_TOL and diffs["lower"] <= VALUE_TOL and diffs["upper"] <= VALUE_TOL and diffs["sampling_error"] <= SE_TOL
        failed |= not ok
        print(f"{name} {m}: nannyml {got['value']:.10f} driftwatch {want['value']:.10f} |d| {diffs['value']:.2g}; "
              f"sampling error |d| {diffs['sampling_error']:.2g}; bounds |d| {max(diffs['lower'], diffs['upper']):.2g} {'ok' if ok else 'DIFFERS'}")


for c in golden["cases"]:
    r, w = c["reference"], c["window"]
    ref = pd.DataFrame({"score": r["score"], "pred": r["predicted"], "y": r["positive"]})
    cur = pd.DataFrame({"score": w["score"], "pred": w["predicted"]})
    est = nml.CBPE(y_pred_proba="score", y_pred="pred", y_true="y", problem_type="classification_binary",
                   metrics=METRICS, chunk_number=1)
    est.fit(ref)
    needs = bool(est.needs_calibration)
    if needs != c["needs_calibration"]:
        print(f"{c['name']}: NannyML calibrates {needs}, driftwatch {c['needs_calibration']}: not compared")
        failed = True
        continue
    res = est.estimate(cur).filter(period="analysis").to_df()
    compare(c["name"], c["estimated"], res, needs)

for c in golden["multiclass"]:
    r, w = c["reference"], c["window"]
    classes = sorted(r["probs"][0])
    ref = pd.DataFrame({f"p_{k}": [p[k] for p in r["probs"]] for k in classes})
    ref["pred"], ref["y"] = r["predicted"], r["truth"]
    cur = pd.DataFrame({f"p_{k}": [p[k] for p in w["probs"]] for k in classes})
    cur["pred"] = w["predicted"]
    est = nml.CBPE(y_pred_proba={k: f"p_{k}" for k in classes}, y_pred="pred", y_true="y",
                   problem_type="classification_multiclass", metrics=METRICS, chunk_number=1)
    est.fit(ref)
    # Per class, NannyML keeps a NoopCalibrator where calibration is not needed.
    needs = [not isinstance(est._calibrators[k], NoopCalibrator) for k in classes]
    if needs != c["needs_calibration"]:
        print(f"{c['name']}: NannyML calibrates {needs}, driftwatch {c['needs_calibration']}: not compared")
        failed = True
        continue
    res = est.estimate(cur).filter(period="analysis").to_df()
    compare(c["name"], c["estimated"], res, needs)

sys.exit(1 if failed else 0)
