"""Predictions of testdata/artifact.json by the Python loader in docs/serve.md.

Run from the repository root with the venv of `bash scripts/deps.sh python`:

    .deps/venv/bin/python retrain/serve/testdata/artifact.py

It takes the ```python block of docs/serve.md as written, predicts the rows
of testdata/rows.json with it, checks the answers against scikit-learn's
LogisticRegression with the artifact's coefficients on the same vectors, and
writes testdata/artifact_golden.json, which artifact_test.go compares with
driftwatch's PredictRow.
"""
import json
import re

import numpy as np
from sklearn.linear_model import LogisticRegression

doc = open("docs/serve.md").read()
code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
ns = {}
exec(code, ns)
m = ns["load"]("retrain/serve/testdata/artifact.json")
rows = json.load(open("retrain/serve/testdata/rows.json"))
out = []
clf = LogisticRegression()
clf.coef_ = np.array([m["coef"]])
clf.intercept_ = np.array([m["intercept"]])
clf.classes_ = np.array([0, 1])
for r in rows:
    p = ns["predict"](m, r)
    # The same vector, rebuilt by the loader's own steps through a
    # one-coefficient probe: x_j = predict with coef = e_j, intercept 0.
    x = []
    for j in range(len(m["coef"])):
        probe = dict(m, coef=[1.0 if k == j else 0.0 for k in range(len(m["coef"]))], intercept=0.0, kind="ridge_regression")
        x.append(ns["predict"](probe, r))
    sk = float(clf.predict_proba(np.array([x]))[0, 1])
    assert abs(sk - p) <= 1e-12, (p, sk)
    out.append(p)
json.dump({"rows": rows, "scores": out}, open("retrain/serve/testdata/artifact_golden.json", "w"), indent=1)
print("wrote", len(out), "scores")
