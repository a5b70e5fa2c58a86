#!/usr/bin/env python3
"""Issue 18 item 5: driftwatch's reconstruction error against NannyML 0.13.1.

Runs NannyML's DataReconstructionDriftCalculator (defaults: StandardScaler,
PCA keeping 0.65 of the variance, mean Euclidean reconstruction error per
chunk) on the cases of golden.json, one chunk for the whole current window,
and compares its value with golden.json's current_error, which
TestGoldenReconstruction holds driftwatch's Go code to (1e-9 relative).

Tolerance 1e-6 relative: NannyML lets scikit-learn pick the SVD solver
(svd_solver "auto", full on data this small) and imputes (nothing to impute
here), so the only differences are floating-point order.

NannyML is not in the default deps; it goes into a venv of its own:

    python3 -m venv .deps/nannyml-venv
    .deps/nannyml-venv/bin/pip install nannyml==0.13.1 statsmodels

(nannyml 0.13.1 imports statsmodels without requiring it.)
    .deps/nannyml-venv/bin/python monitor/multivariate/testdata/nannyml_check.py
"""

import json
import os
import sys

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # no usage report sent

import nannyml as nml  # noqa: E402
import pandas as pd

assert nml.__version__ == "0.13.1", nml.__version__

TOL = 1e-6

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "golden.json")) as f:
    cases = json.load(f)["cases"]

failed = False
for c in cases:
    cols = [f"f{j}" for j in range(len(c["reference"][0]))]
    ref = pd.DataFrame(c["reference"], columns=cols)
    cur = pd.DataFrame(c["current"], columns=cols)
    calc = nml.DataReconstructionDriftCalculator(column_names=cols, chunk_number=1, n_components=c["share"])
    calc.fit(ref)
    df = calc.calculate(cur).filter(period="analysis").to_df()
    got = float(df[("reconstruction_error", "value")].iloc[0])
    want = c["current_error"]
    ok = abs(got - want) <= TOL * abs(want)
    failed |= not ok
    print(f"{c['name']}: nannyml {got:.12g} driftwatch {want:.12g} {'ok' if ok else 'DIFFERS'}")

# Categorical features (testdata/categorical.py). driftwatch one-hot encodes
# the reference's top categories (issue 18); NannyML 0.13.1 encodes a
# categorical column with category_encoders' CountEncoder(normalize=True),
# one column holding the category's share of the reference, after imputing
# the most frequent category. The check is of the pipeline after the
# encoding: NannyML given driftwatch's one-hot columns as continuous columns
# must give categorical.json's error (TestGoldenCategorical holds the Go
# code to it) to the same 1e-6. NannyML's own encoding is printed beside
# it, not compared (another column, another standardised space): it sees
# the flip too, because "a" and "b" have slightly different shares, but a
# category's share stands for it, so two categories of equal share would
# be one value to the PCA.
sys.path.insert(0, here)
from categorical import one_hot  # noqa: E402

with open(os.path.join(here, "categorical.json")) as f:
    cat_cases = json.load(f)["cases"]
for c in cat_cases:
    ref_oh, kept = one_hot(c["reference_categories"], c["reference_categories"])
    cur_oh, _ = one_hot(c["reference_categories"], c["current_categories"])
    oh_cols = [f"c={k}" for k in kept]
    frames = []
    for num, oh in ((c["reference"], ref_oh), (c["current"], cur_oh)):
        d = pd.DataFrame(num, columns=["x", "y"])
        for j, col in enumerate(oh_cols):
            d[col] = oh[:, j]
        frames.append(d)
    calc = nml.DataReconstructionDriftCalculator(column_names=["x", "y"] + oh_cols, chunk_number=1, n_components=c["share"])
    calc.fit(frames[0])
    got = float(calc.calculate(frames[1]).filter(period="analysis").to_df()[("reconstruction_error", "value")].iloc[0])
    want = c["current_error"]
    ok = abs(got - want) <= TOL * abs(want)
    failed |= not ok
    print(f"{c['name']} (one-hot {', '.join(oh_cols)}): nannyml {got:.12g} driftwatch {want:.12g} {'ok' if ok else 'DIFFERS'}")

    # NannyML's own encoding of c, for the record.
    raw = []
    for num, cats in ((c["reference"], c["reference_categories"]), (c["current"], c["current_categories"])):
        d = pd.DataFrame(num, columns=["x", "y"])
        d["c"] = pd.Series([v if v != "" else None for v in cats], dtype="category")
        raw.append(d)
    calc = nml.DataReconstructionDriftCalculator(column_names=["x", "y", "c"], chunk_number=1, n_components=c["share"])
    calc.fit(raw[0])
    ref_err = float(calc.calculate(raw[0]).filter(period="analysis").to_df()[("reconstruction_error", "value")].iloc[0])
    cur_err = float(calc.calculate(raw[1]).filter(period="analysis").to_df()[("reconstruction_error", "value")].iloc[0])
    print(f"  nannyml's CountEncoder on c: reference {ref_err:.6g}, current {cur_err:.6g} (not compared)")
sys.exit(1 if failed else 0)
