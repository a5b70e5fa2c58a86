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

import nannyml as nml
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
sys.exit(1 if failed else 0)
