#!/usr/bin/env python3
"""Reference numbers for driftwatch's monitor/cbpe package (STYLE.md rule 17).

Seeded reference and analysis data for a binary classifier; CBPE as NannyML
0.13.1 computes it, with scikit-learn 1.6.1's IsotonicRegression and numpy
2.2.6. NannyML's functions are transcribed below from its sources
(nannyml/calibration.py, nannyml/performance_estimation/confidence_based/
metrics.py, nannyml/sampling_error/binary_classification.py at the 0.13.1
release), so the script needs only numpy and scikit-learn:

    .deps/venv/bin/python monitor/cbpe/testdata/golden.py

Multiclass cases follow NannyML's CLASSIFICATION_MULTICLASS CBPE (one-vs-rest
calibration, renormalised; macro averages; multiclass sampling errors).

One deliberate difference, the same as the Go code's: needs_calibration's
splits are 10 stratified folds dealt in (score, truth) order instead of
StratifiedShuffleSplit(random_state=42) (see the package doc). The script
also reports NannyML's own StratifiedShuffleSplit decision
("nannyml_needs_calibration") so the test shows both agree on these cases.
"""

import json
import os

import numpy as np
import sklearn
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import auc, roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit

assert np.__version__ == "2.2.6", np.__version__
assert sklearn.__version__ == "1.6.1", sklearn.__version__

HERE = os.path.dirname(os.path.abspath(__file__))


# --- nannyml/calibration.py -------------------------------------------------
def _get_bin_index_edges(vector_length, bin_count):
    if vector_length <= 2 * bin_count:
        bin_count = vector_length // 2
    bin_width = vector_length // bin_count
    bin_edges = np.asarray(range(0, vector_length + 1, bin_width))
    bin_edges[-1] = vector_length
    return list(zip(bin_edges[:-1], bin_edges[1:]))


def _ece(y_true, y_pred_proba, bin_index_edges):
    terms = []
    y_pred_proba, y_true = np.asarray(y_pred_proba), np.asarray(y_true)
    sort_index = y_pred_proba.argsort(kind="stable")
    y_pred_proba = y_pred_proba[sort_index]
    y_true = y_true[sort_index]
    for left, right in bin_index_edges:
        bp, bt = y_pred_proba[left:right], y_true[left:right]
        terms.append(len(bp) / len(y_pred_proba) * abs(np.mean(bp) - np.mean(bt)))
    return np.sum(terms)


def needs_calibration(y_true, y_pred_proba, splits):
    if len(np.unique(y_true)) == 1:
        return False
    if roc_auc_score(y_true, y_pred_proba) > 0.999:
        return False
    yt, raw, cal = [], [], []
    for train, test in splits:
        iso = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(y_pred_proba[train], y_true[train])
        yt.append(y_true[test])
        raw.append(y_pred_proba[test])
        cal.append(iso.predict(y_pred_proba[test]))
    yt, raw, cal = np.concatenate(yt), np.concatenate(raw), np.concatenate(cal)
    edges = _get_bin_index_edges(len(raw), 10)
    return bool(_ece(yt, raw, edges) > _ece(yt, cal, edges))


def driftwatch_folds(y_true, y_pred_proba):
    """Rows ordered by (score, truth), dealt per class into 10 folds."""
    order = np.lexsort((y_true, y_pred_proba))
    fold = np.empty(len(order), dtype=int)
    for c in (0, 1):
        rows = order[y_true[order] == c]
        fold[rows] = np.arange(len(rows)) % 10
    return [(np.where(fold != k)[0], np.where(fold == k)[0]) for k in range(10)]


def nannyml_folds(y_true, y_pred_proba):
    return list(StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=42).split(y_pred_proba, y_true))


# --- nannyml/performance_estimation/confidence_based/metrics.py -------------
def estimate_roc_auc(true_y_pred_proba, model_y_pred_proba):
    sorted_index = np.argsort(model_y_pred_proba)[::-1]
    true_y_pred_proba = true_y_pred_proba[sorted_index]
    tps = np.cumsum(true_y_pred_proba)
    fps = 1 + np.arange(len(true_y_pred_proba)) - tps
    tps = np.round(np.r_[0, tps], 5)
    fps = np.round(np.r_[0, fps], 5)
    return auc(fps / fps[-1], tps / tps[-1])


def estimate_accuracy(y_pred, p):
    return (np.sum(np.where(y_pred == 1, p, 0)) + np.sum(np.where(y_pred == 0, 1 - p, 0))) / len(y_pred)


def estimate_precision(y_pred, p):
    TP, FP = np.sum(np.where(y_pred == 1, p, 0)), np.sum(np.where(y_pred == 1, 1 - p, 0))
    return TP / (TP + FP) if TP + FP != 0 else 0


def estimate_recall(y_pred, p):
    TP, FN = np.sum(np.where(y_pred == 1, p, 0)), np.sum(np.where(y_pred == 0, p, 0))
    return TP / (TP + FN) if TP + FN != 0 else 0


def estimate_f1(y_pred, p):
    TP = np.sum(np.where(y_pred == 1, p, 0))
    FP = np.sum(np.where(y_pred == 1, 1 - p, 0))
    FN = np.sum(np.where(y_pred == 0, p, 0))
    d = TP + 0.5 * (FP + FN)
    return TP / d if d != 0 else 0


# --- nannyml/sampling_error/binary_classification.py ------------------------
def auroc_components(y_true, y_pred_proba):
    if np.mean(y_true) > 0.5:
        y_true = abs(np.asarray(y_true) - 1)
        y_pred_proba = 1 - y_pred_proba
    idx = np.argsort(y_pred_proba)
    y_pred_proba, y_true = y_pred_proba[idx], y_true[idx]
    positive_ranks = y_true * np.asarray(range(len(y_pred_proba)))
    indexes = np.unique(positive_ranks)[1:]
    ser = [index - i for i, index in enumerate(indexes)]
    n_pos = np.sum(y_true)
    n_neg = len(y_true) - n_pos
    return np.std(np.true_divide(ser, n_neg)), n_pos / len(y_true)


def f1_components(y_true, y_pred):
    TP = np.where((y_true == y_pred) & (y_pred == 1), 1, np.nan)
    FP = np.where((y_true != y_pred) & (y_pred == 1), 0, np.nan)
    FN = np.where((y_true != y_pred) & (y_pred == 0), 0, np.nan)
    TP, FN, FP = TP[~np.isnan(TP)], FN[~np.isnan(FN)], FP[~np.isnan(FP)]
    tp_fp_fn = np.concatenate([TP, FN, FP])
    cf = len(tp_fp_fn) / ((len(FN) + len(FP)) * 0.5 + len(TP))
    return np.std(tp_fp_fn * cf), len(tp_fp_fn) / len(y_pred)


def precision_components(y_true, y_pred):
    TP = np.where((y_true == y_pred) & (y_pred == 1), 1, np.nan)
    FP = np.where((y_true != y_pred) & (y_pred == 1), 0, np.nan)
    obs = np.concatenate([TP[~np.isnan(TP)], FP[~np.isnan(FP)]])
    return np.std(obs), np.sum(y_pred) / len(y_pred)


def recall_components(y_true, y_pred):
    TP = np.where((y_true == y_pred) & (y_pred == 1), 1, np.nan)
    FN = np.where((y_true != y_pred) & (y_pred == 0), 0, np.nan)
    obs = np.concatenate([TP[~np.isnan(TP)], FN[~np.isnan(FN)]])
    return np.std(obs), sum(y_true) / len(y_pred)


def accuracy_components(y_true, y_pred):
    return np.std((y_true == y_pred).astype(int)), 1.0


def case(name, rng, n_ref, n_cur, shift, squash, threshold=0.5):
    """A logistic model on one feature x; the score is squash-distorted (so
    it needs calibration when squash != 1); the analysis window moves x by
    shift (covariate shift: P(y|x) unchanged)."""
    def draw(n, mu):
        x = rng.normal(mu, 1, n)
        p_true = 1 / (1 + np.exp(-(1.5 * x - 0.5)))
        y = (rng.random(n) < p_true).astype(int)
        score = p_true ** squash / (p_true ** squash + (1 - p_true) ** squash)
        # noise in logit space keeps the scores distinct: with tied scores
        # NannyML's AUC components depend on numpy's unstable argsort.
        score = 1 / (1 + np.exp(-(np.log(score / (1 - score)) + rng.normal(0, 0.1, n))))
        return y, score
    y_ref, s_ref = draw(n_ref, 0.0)
    y_cur, s_cur = draw(n_cur, shift)
    pred_ref, pred_cur = (s_ref >= threshold).astype(int), (s_cur >= threshold).astype(int)

    calibrate = needs_calibration(y_ref, s_ref, driftwatch_folds(y_ref, s_ref))
    if calibrate:
        iso = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(s_ref, y_ref)
        p_cur = iso.predict(s_cur)
        knots = {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    else:
        p_cur, knots = s_cur, None
    comps = {
        "accuracy": accuracy_components(y_ref, pred_ref),
        "precision": precision_components(y_ref, pred_ref),
        "recall": recall_components(y_ref, pred_ref),
        "f1": f1_components(y_ref, pred_ref),
        "roc_auc": auroc_components(y_ref, s_ref),
    }
    est = {
        "accuracy": estimate_accuracy(pred_cur, p_cur),
        "precision": estimate_precision(pred_cur, p_cur),
        "recall": estimate_recall(pred_cur, p_cur),
        "f1": estimate_f1(pred_cur, p_cur),
        "roc_auc": estimate_roc_auc(p_cur, s_cur),
    }
    out = {}
    for m, v in est.items():
        std, frac = comps[m]
        se = std / np.sqrt(len(s_cur) * frac)
        out[m] = {"value": float(v), "sampling_error": float(se),
                  "lower": float(max(0, v - 3 * se)), "upper": float(min(1, v + 3 * se))}
    realized = {"roc_auc": float(roc_auc_score(y_cur, s_cur)),
                "accuracy": float(np.mean(pred_cur == y_cur))}
    return {
        "name": name, "threshold": threshold,
        "reference": {"score": s_ref.tolist(), "positive": y_ref.tolist(), "predicted": pred_ref.tolist()},
        "window": {"score": s_cur.tolist(), "predicted": pred_cur.tolist()},
        "needs_calibration": calibrate,
        "nannyml_needs_calibration": needs_calibration(y_ref, s_ref, nannyml_folds(y_ref, s_ref)),
        "knots": knots, "estimated": out, "realized": realized,
    }


# --- nannyml/sampling_error/multiclass_classification.py ------------------
def mc_class_auroc_components(y_true, y_pred_proba):
    std, fraction = auroc_components(y_true, y_pred_proba)
    return std ** 2, fraction  # np.var(ser_multi) = np.std(ser_multi)**2


def mc_precision_components(y_true, y_pred):
    TP = np.where((y_true == y_pred) & (y_pred == 1), 1, np.nan)
    FP = np.where((y_true != y_pred) & (y_pred == 1), 0, np.nan)
    obs = np.concatenate([TP[~np.isnan(TP)], FP[~np.isnan(FP)]])
    return np.var(obs), np.sum(y_pred) / len(y_pred)


def mc_recall_components(y_true, y_pred):
    TP = np.where((y_true == y_pred) & (y_pred == 1), 1, np.nan)
    FN = np.where((y_true != y_pred) & (y_pred == 0), 0, np.nan)
    obs = np.concatenate([TP[~np.isnan(TP)], FN[~np.isnan(FN)]])
    return np.var(obs), sum(y_true) / len(y_pred)


def mc_f1_components(y_true, y_pred):
    TP = np.where((y_true == y_pred) & (y_pred == 1), 1, np.nan)
    FP = np.where((y_true != y_pred) & (y_pred == 1), 0, np.nan)
    FN = np.where((y_true != y_pred) & (y_pred == 0), 0, np.nan)
    obs = np.concatenate([TP[~np.isnan(TP)], FN[~np.isnan(FN)], FP[~np.isnan(FP)]])
    return np.var(obs), len(obs) / len(y_pred)


def mc_sd_of_variances(components, n, factor=1.0):
    v = [c[0] / (n * c[1]) for c in components]
    return np.sqrt(np.sum(v)) / len(v) * factor


def multiclass_case(name, rng, n_ref, n_cur, shift, temperature):
    """Three classes a, b, c; true P(class | x) = softmax(W x); the model's
    probabilities softmax(temperature · W x) (miscalibrated unless 1); the
    window moves x by shift."""
    classes = ["a", "b", "c"]
    W = np.array([[1.2, -0.4], [-0.6, 1.0], [-0.6, -0.6]])

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def draw(n, mu):
        x = rng.normal(mu, 1, (n, 2))
        p_true = softmax(x @ W.T)
        y = np.array([rng.choice(3, p=p) for p in p_true])
        raw = softmax(temperature * (x @ W.T) + rng.normal(0, 0.05, (n, 3)))
        return y, raw

    y_ref, raw_ref = draw(n_ref, np.zeros(2))
    y_cur, raw_cur = draw(n_cur, np.array(shift))
    pred_ref, pred_cur = raw_ref.argmax(axis=1), raw_cur.argmax(axis=1)
    cal = np.zeros_like(raw_cur)
    needs = []
    for k in range(3):
        yk = (y_ref == k).astype(int)
        nk = needs_calibration(yk, raw_ref[:, k], driftwatch_folds(yk, raw_ref[:, k]))
        needs.append(nk)
        if nk:
            cal[:, k] = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(raw_ref[:, k], yk).predict(raw_cur[:, k])
        else:
            cal[:, k] = raw_cur[:, k]
    den = cal.sum(axis=1)[:, None]
    cal = np.divide(cal, den, out=np.full_like(cal, 1 / 3), where=den != 0)
    bin_cur = np.stack([(pred_cur == k).astype(int) for k in range(3)])
    est = {
        "accuracy": np.mean(np.max(bin_cur.T * cal, axis=1)),
        "precision": np.mean([estimate_precision(bin_cur[k], cal[:, k]) for k in range(3)]),
        "recall": np.mean([estimate_recall(bin_cur[k], cal[:, k]) for k in range(3)]),
        "f1": np.mean([estimate_f1(bin_cur[k], cal[:, k]) for k in range(3)]),
        "roc_auc": np.mean([estimate_roc_auc(cal[:, k], raw_cur[:, k]) for k in range(3)]),
    }
    ybin = [(y_ref == k).astype(int) for k in range(3)]
    pbin = [(pred_ref == k).astype(int) for k in range(3)]
    n = n_cur
    se = {
        "accuracy": np.std((y_ref == pred_ref).astype(int)) / np.sqrt(n),
        "precision": mc_sd_of_variances([mc_precision_components(ybin[k], pbin[k]) for k in range(3)], n),
        "recall": mc_sd_of_variances([mc_recall_components(ybin[k], pbin[k]) for k in range(3)], n),
        "f1": mc_sd_of_variances([mc_f1_components(ybin[k], pbin[k]) for k in range(3)], n),
        "roc_auc": mc_sd_of_variances([mc_class_auroc_components(ybin[k], raw_ref[:, k]) for k in range(3)], n, 1.2),
    }
    out = {m: {"value": float(v), "sampling_error": float(se[m]), "lower": float(max(0, v - 3 * se[m])), "upper": float(min(1, v + 3 * se[m]))}
           for m, v in est.items()}

    def probs(raw):
        return [{c: float(raw[i, k]) for k, c in enumerate(classes)} for i in range(len(raw))]
    return {
        "name": name,
        "reference": {"probs": probs(raw_ref), "truth": [classes[k] for k in y_ref], "predicted": [classes[k] for k in pred_ref]},
        "window": {"probs": probs(raw_cur), "predicted": [classes[k] for k in pred_cur]},
        "needs_calibration": needs, "estimated": out,
        "realized": {"accuracy": float(np.mean(pred_cur == y_cur)),
                     "roc_auc": float(roc_auc_score(y_cur, raw_cur, multi_class="ovr", average="macro"))},
    }


def main():
    rng = np.random.default_rng(18)
    cases = [
        case("miscalibrated_covariate_shift", rng, 3000, 1500, 0.8, 0.5),
        case("calibrated_no_shift", rng, 3000, 1000, 0.0, 1.0),
        case("overconfident_shift_down", rng, 2000, 800, -0.7, 2.0),
    ]
    multiclass = [
        multiclass_case("multiclass_overconfident_shift", rng, 3000, 1500, [0.7, -0.3], 1.8),
        multiclass_case("multiclass_underconfident", rng, 3000, 1000, [0.0, 0.0], 0.6),
    ]
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump({"cases": cases, "multiclass": multiclass}, f)
        f.write("\n")
    for c in cases:
        print(c["name"], c["needs_calibration"], c["nannyml_needs_calibration"],
              {m: round(v["value"], 4) for m, v in c["estimated"].items()}, c["realized"])
    for c in multiclass:
        print(c["name"], c["needs_calibration"], {m: round(v["value"], 4) for m, v in c["estimated"].items()}, c["realized"])


if __name__ == "__main__":
    main()
