#!/usr/bin/env python3
"""Reference numbers for driftwatch's monitor/perf package (STYLE.md rule 17).

Generates seeded inferences and outcomes for three models (binary,
multiclass, regression), applies the label-join rule of monitor/perf in
plain Python, computes every metric with scikit-learn 1.6.1 / numpy 2.2.6
and writes golden.json next to this file. monitor/perf's test inserts the
rows into a fresh ClickHouse database, runs perf.Compute and compares
(1e-9 relative).

    .deps/venv/bin/python monitor/perf/testdata/golden.py

(`bash scripts/deps.sh python` creates .deps/venv.) Times are milliseconds
from the window start; the window is [0, 1 h), the label horizon 6 h.

The label-join rule: an inference of the window (deduplicated on event_id)
takes, of the outcomes for the same (model_id, prediction_id) with
outcome_ts - inference_ts <= horizon (deduplicated on event_id), the newest
by (timestamp, event_id). It is labelled when that outcome carries the
task's truth. Binary rows: truth is actual_label == positive; the predicted
class is prediction_label == positive, or score >= threshold when the
producer sent no label. Multiclass: macro averages over the union of true
and predicted labels; log_loss (sklearn's, clipped to [eps, 1-eps]) and
brier (macro: the mean over classes of one-vs-rest brier_score_loss) over
the labelled rows that carry class probabilities. Label delays: numpy.quantile(..., "linear").
"""

import json
import os
import warnings

import numpy as np
import sklearn
from sklearn import metrics

assert np.__version__ == "2.2.6", np.__version__
assert sklearn.__version__ == "1.6.1", sklearn.__version__

HERE = os.path.dirname(os.path.abspath(__file__))
HOUR = 3_600_000
HORIZON = 6 * HOUR
THRESHOLD = 0.5


def gen_outcomes(rng, inf, truth, wrong_truth, model):
    """Outcomes for inference rows, exercising every branch of the join rule.

    truth(i) gives the true (label, value) of inference i; wrong_truth(i) a
    different one, used for superseded and beyond-horizon outcomes.
    """
    out = []
    eid = 0

    def add(pid, ts, label, value):
        nonlocal eid
        eid += 1
        out.append({"event_id": f"{model}-o{eid:06d}", "prediction_id": pid, "ts": int(ts), "label": label, "value": value})

    seen = set()
    for i, r in enumerate(inf):
        if r["event_id"] in seen:
            continue  # a duplicated inference event has one set of outcomes
        seen.add(r["event_id"])
        u = rng.random()
        delay = int(rng.exponential(HOUR / 2)) + 1
        lab, val = truth(i)
        wl, wv = wrong_truth(i)
        if u < 0.15:
            continue  # never labelled
        if u < 0.20:
            add(r["prediction_id"], r["ts"] + HORIZON + 1 + delay, lab, val)  # only beyond the horizon
            continue
        if u < 0.30:
            # a correction: the newer outcome wins
            add(r["prediction_id"], r["ts"] + delay, wl, wv)
            add(r["prediction_id"], r["ts"] + delay + 1 + int(rng.integers(1, HOUR)), lab, val)
            continue
        if u < 0.33:
            # a correction beyond the horizon is ignored
            add(r["prediction_id"], r["ts"] + delay, lab, val)
            add(r["prediction_id"], r["ts"] + HORIZON + 5, wl, wv)
            continue
        if u < 0.34:
            add(r["prediction_id"], r["ts"] - int(rng.integers(1, 500)), lab, val)  # clock skew
            continue
        if u < 0.35:
            add(r["prediction_id"], r["ts"] + HORIZON, lab, val)  # exactly at the horizon: counts
            continue
        add(r["prediction_id"], r["ts"] + delay, lab, val)
        if u > 0.99:
            out.append(dict(out[-1]))  # a producer duplicate: same event_id
    # outcomes of another model for the same prediction ids must not join
    for r in inf[:50]:
        eid += 1
        out.append({"event_id": f"{model}-x{eid:06d}", "prediction_id": r["prediction_id"], "ts": r["ts"] + 10,
                    "label": "zzz", "value": -1e9, "model": "other"})
    return out


def gen_inferences(rng, model, n):
    inf = []
    for i in range(n):
        inf.append({"event_id": f"{model}-e{i:06d}", "prediction_id": f"{model}-p{i:06d}",
                    "ts": int(rng.integers(0, HOUR)), "version": "v1" if i % 3 else "v2"})
    # rows outside the window (before and at its end) and a duplicate event
    for j, ts in enumerate([-1, HOUR, HOUR + 5000, -HOUR]):
        inf.append({"event_id": f"{model}-out{j}", "prediction_id": f"{model}-q{j}", "ts": ts, "version": "v1"})
    return inf


def duplicate(inf):
    """Appends producer duplicates (same event_id, same content) of a few rows."""
    inf.extend(dict(inf[k]) for k in (5, 17, 400))


def join(inf, outs, has_truth):
    """The label-join rule; returns {event_id: (outcome, delay_ms)}."""
    seen, uniq_out = set(), []
    for o in outs:
        if o.get("model", "") == "other" or o["event_id"] in seen:
            continue
        seen.add(o["event_id"])
        uniq_out.append(o)
    by_pid = {}
    for o in uniq_out:
        by_pid.setdefault(o["prediction_id"], []).append(o)
    res = {}
    for r in inf:
        if not (0 <= r["ts"] < HOUR):
            continue
        cands = [o for o in by_pid.get(r["prediction_id"], []) if o["ts"] - r["ts"] <= HORIZON]
        if not cands:
            continue
        best = max(cands, key=lambda o: (o["ts"], o["event_id"]))
        if has_truth(best):
            res[r["event_id"]] = (best, best["ts"] - r["ts"])
    return res


def window_rows(inf):
    seen, rows = set(), []
    for r in inf:
        if 0 <= r["ts"] < HOUR and r["event_id"] not in seen:
            seen.add(r["event_id"])
            rows.append(r)
    return rows


def common(inf, joined):
    rows = window_rows(inf)
    delays = np.array([d for _, d in joined.values()], dtype=float) / 1000
    return rows, {
        "inferences": len(rows),
        "labelled": len(joined),
        "label_coverage": len(joined) / len(rows),
        "label_delay_seconds": np.quantile(delays, [0.5, 0.9, 0.99], method="linear").tolist(),
    }


def m(value, samples):
    return {"value": float(value), "samples": int(samples)}


def binary_case(rng):
    model, pos = "bin", "fraud"
    inf = gen_inferences(rng, model, 3000)
    truth = []
    for r in inf:
        score = float(np.round(rng.beta(2, 5) if rng.random() < 0.7 else rng.beta(5, 2), 2))  # ties
        if rng.random() < 0.03:
            score = float(rng.choice([0.0, 1.0]))  # log loss clipping
        y = pos if rng.random() < 0.15 + 0.7 * score else "ok"
        r["score"] = score if rng.random() > 0.03 else None
        if rng.random() < 0.1:
            r["label"] = None  # the score decides, at the threshold
            if r["score"] is None:
                r["score"] = 0.5  # exactly at the threshold: positive
        else:
            r["label"] = pos if (score >= 0.5) != (rng.random() < 0.05) else "ok"
        truth.append(y)
    duplicate(inf)
    outs = gen_outcomes(rng, inf, lambda i: (truth[i], None),
                        lambda i: ("ok" if truth[i] == pos else pos, None), model)
    joined = join(inf, outs, lambda o: o["label"] is not None)
    rows, exp = common(inf, joined)
    lab = [r for r in rows if r["event_id"] in joined]
    y = np.array([joined[r["event_id"]][0]["label"] == pos for r in lab], dtype=int)
    pred = np.array([(r["label"] == pos) if r["label"] is not None else (r["score"] >= THRESHOLD) for r in lab], dtype=int)
    scored = np.array([r["score"] is not None for r in lab])
    ys, ps = y[scored], np.array([r["score"] for r in lab if r["score"] is not None], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp["metrics"] = {
            "accuracy": m(metrics.accuracy_score(y, pred), len(y)),
            "precision": m(metrics.precision_score(y, pred), len(y)),
            "recall": m(metrics.recall_score(y, pred), len(y)),
            "f1": m(metrics.f1_score(y, pred), len(y)),
            "roc_auc": m(metrics.roc_auc_score(ys, ps), len(ys)),
            "log_loss": m(metrics.log_loss(ys, ps, labels=[0, 1]), len(ys)),
            "brier": m(metrics.brier_score_loss(ys, ps), len(ys)),
        }
    return {"name": "binary", "model": model, "task": "classification", "positive_label": pos,
            "threshold": THRESHOLD, "inferences": inf, "outcomes": outs, "expected": exp}


def multiclass_case(rng):
    model, classes = "mc", ["cat", "dog", "bird", "fish"]
    inf = gen_inferences(rng, model, 2500)
    truth = []
    for r in inf:
        y = classes[int(rng.choice(4, p=[0.4, 0.3, 0.2, 0.1]))]
        u = rng.random()
        if u < 0.7:
            p = y
        elif u < 0.98:
            p = classes[int(rng.integers(0, 4))]
        else:
            p = "horse"  # predicted, never true: precision 0, recall 0/0 -> 0
        r["label"] = p if rng.random() > 0.02 else None  # unscored rows
        r["score"] = None
        # Class probabilities: most rows have all four (favouring the
        # predicted label), some none (not scored by log_loss and brier);
        # some give the true class probability 0 (log_loss clipping), some
        # leave a class out (the true one, or another).
        v = rng.random()
        if v < 0.05:
            r["probs"] = None
        else:
            w = rng.dirichlet([1.0, 1.0, 1.0, 1.0])
            if p in classes:
                w[classes.index(p)] += 1.0
            if v > 0.97:
                w[classes.index(y)] = 0.0
            w = w / w.sum()
            r["probs"] = {c: float(x) for c, x in zip(classes, w)}
            if 0.90 < v <= 0.93:
                del r["probs"][classes[(classes.index(y) + 1) % 4]]  # another class left out
            elif v > 0.985:
                del r["probs"][y]  # the true class left out: probability 0
        truth.append(y)
    duplicate(inf)
    outs = gen_outcomes(rng, inf, lambda i: (truth[i], None),
                        lambda i: (classes[(classes.index(truth[i]) + 1) % 4], None), model)
    joined = join(inf, outs, lambda o: o["label"] is not None)
    rows, exp = common(inf, joined)
    lab = [r for r in rows if r["event_id"] in joined and r["label"] is not None]
    y = [joined[r["event_id"]][0]["label"] for r in lab]
    p = [r["label"] for r in lab]
    # log_loss and brier score the labelled rows that carry probabilities
    # (prediction_label may be absent): columns in sorted class order, as
    # sklearn's LabelBinarizer orders them.
    scored = [r for r in rows if r["event_id"] in joined and r["probs"] is not None]
    ys = np.array([joined[r["event_id"]][0]["label"] for r in scored])
    labels = sorted(set(ys) | {c for r in scored for c in r["probs"]})
    P = np.array([[r["probs"].get(c, 0.0) for c in labels] for r in scored])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp["metrics"] = {
            "accuracy": m(metrics.accuracy_score(y, p), len(y)),
            "precision": m(metrics.precision_score(y, p, average="macro"), len(y)),
            "recall": m(metrics.recall_score(y, p, average="macro"), len(y)),
            "f1": m(metrics.f1_score(y, p, average="macro"), len(y)),
            "log_loss": m(metrics.log_loss(ys, P, labels=labels), len(ys)),
            # macro: the mean over classes of each class's one-vs-rest Brier
            "brier": m(np.mean([metrics.brier_score_loss((ys == c).astype(int), P[:, k], pos_label=1)
                                for k, c in enumerate(labels)]), len(ys)),
        }
    return {"name": "multiclass", "model": model, "task": "classification", "positive_label": "",
            "threshold": THRESHOLD, "inferences": inf, "outcomes": outs, "expected": exp}


def regression_case(rng):
    model = "reg"
    inf = gen_inferences(rng, model, 2500)
    truth = []
    for i, r in enumerate(inf):
        y = float(np.round(rng.gamma(2.0, 50.0), 3))
        if i % 400 == 7:
            y = 0.0  # mape's epsilon floor
        if i % 250 == 3:
            y = float(np.round(rng.normal(scale=1e-3), 6))  # tiny and negative truths
        r["value"] = float(y + rng.normal(scale=10.0)) if rng.random() > 0.03 else None
        r["label"], r["score"] = None, None
        truth.append(y)
    duplicate(inf)
    outs = gen_outcomes(rng, inf, lambda i: (None, truth[i]), lambda i: (None, truth[i] + 100.0), model)
    joined = join(inf, outs, lambda o: o["value"] is not None)
    rows, exp = common(inf, joined)
    lab = [r for r in rows if r["event_id"] in joined and r["value"] is not None]
    y = np.array([joined[r["event_id"]][0]["value"] for r in lab])
    p = np.array([r["value"] for r in lab])
    exp["metrics"] = {
        "mae": m(metrics.mean_absolute_error(y, p), len(y)),
        "rmse": m(metrics.root_mean_squared_error(y, p), len(y)),
        "mape": m(metrics.mean_absolute_percentage_error(y, p), len(y)),
        "r2": m(metrics.r2_score(y, p), len(y)),
    }
    return {"name": "regression", "model": model, "task": "regression", "positive_label": "",
            "threshold": THRESHOLD, "inferences": inf, "outcomes": outs, "expected": exp}


def columns(rows, keys):
    """Rows as one list per key (a third of the size of row objects)."""
    return {k: [r.get(k) for r in rows] for k in keys}


def main():
    rng = np.random.default_rng(20261127)
    cases = [binary_case(rng), multiclass_case(rng), regression_case(rng)]
    for c in cases:
        c["inferences"] = columns(c["inferences"], ["event_id", "prediction_id", "ts", "version", "label", "score", "value", "probs"])
        c["outcomes"] = columns(c["outcomes"], ["event_id", "prediction_id", "ts", "label", "value", "model"])
    out = {"sklearn": sklearn.__version__, "numpy": np.__version__, "window_ms": HOUR,
           "horizon_ms": HORIZON, "cases": cases}
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
