#!/usr/bin/env python3
"""Example external trainer for driftwatch (plain Python 3, no packages).

driftwatch runs it as

    python3 train.py --dataset DIR --metadata DIR/metadata.json --output OUT

(the same paths are in DRIFTWATCH_DATASET_DIR, DRIFTWATCH_DATASET_METADATA
and DRIFTWATCH_OUTPUT_DIR). It reads the train split and the evaluation
window from the JSON Lines files the metadata names, fits an L2-regularised
logistic regression on the standardised numeric features by batch gradient
descent (or ridge-like least squares by gradient descent for regression),
and writes

    OUT/predictions.csv   event_id,prediction for every evaluation row
    OUT/model/model.json  its coefficients

--fail exits with status 3 after printing an error; --hang sleeps forever
(both for driftwatch's tests).
"""
import argparse
import csv
import json
import math
import os
import sys
import time


def rows(path):
    with open(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--metadata", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--fail", action="store_true")
    ap.add_argument("--hang", action="store_true")
    a = ap.parse_args()
    if a.fail:
        print("train.py: refusing to train (--fail)", file=sys.stderr)
        sys.exit(3)
    if a.hang:
        print("train.py: hanging (--hang)", flush=True)
        while True:
            time.sleep(60)

    meta = json.load(open(a.metadata))
    task = os.environ.get("DRIFTWATCH_TASK", "binary_classification")
    positive = os.environ.get("DRIFTWATCH_POSITIVE_CLASS", "1")
    train = [r for r in rows(meta["splits"]["train"]["jsonl"])]
    names = sorted({k for r in train for k in (r["features_numeric"] or {})})
    n = len(train)
    mean = [sum((r["features_numeric"] or {}).get(k, 0.0) for r in train) / n for k in names]
    std = []
    for j, k in enumerate(names):
        v = sum(((r["features_numeric"] or {}).get(k, mean[j]) - mean[j]) ** 2 for r in train) / n
        std.append(math.sqrt(v) or 1.0)

    def encode(r):
        f = r["features_numeric"] or {}
        return [(f.get(k, mean[j]) - mean[j]) / std[j] for j, k in enumerate(names)]

    def target(r):
        if task == "regression":
            return r["actual_value"]
        return 1.0 if r["actual_label"] == positive else 0.0

    X = [encode(r) for r in train if r["actual_label"] is not None or r["actual_value"] is not None]
    y = [target(r) for r in train if r["actual_label"] is not None or r["actual_value"] is not None]
    d = len(names)
    w, b = [0.0] * d, (sum(y) / len(y) if task == "regression" else 0.0)
    lr, lam = 0.5, 1.0 / len(y)
    for _ in range(a.iterations):
        gw, gb = [0.0] * d, 0.0
        for xi, yi in zip(X, y):
            z = b + sum(wj * xj for wj, xj in zip(w, xi))
            p = z if task == "regression" else 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            e = p - yi
            gb += e
            for j in range(d):
                gw[j] += e * xi[j]
        m = len(y)
        step = lr if task != "regression" else 0.1
        b -= step * gb / m
        w = [wj - step * (g / m + lam * wj) for wj, g in zip(w, gw)]

    os.makedirs(os.path.join(a.output, "model"), exist_ok=True)
    with open(os.path.join(a.output, "model", "model.json"), "w") as f:
        json.dump({"format": "train.py.v1", "task": task, "features": names, "mean": mean, "std": std, "coef": w, "intercept": b}, f)
    with open(os.path.join(a.output, "predictions.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["event_id", "prediction"])
        for r in rows(meta["splits"]["eval"]["jsonl"]):
            z = b + sum(wj * xj for wj, xj in zip(w, encode(r)))
            p = z if task == "regression" else 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            out.writerow([r["event_id"], repr(p)])
    print("train.py: trained on %d rows, %d features" % (len(y), d))


if __name__ == "__main__":
    main()
