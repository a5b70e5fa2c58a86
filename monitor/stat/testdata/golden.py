#!/usr/bin/env python3
"""Reference numbers for driftwatch's monitor/stat package (STYLE.md rule 17).

Computes every method with numpy 2.2.6 / scipy 1.15.3 on seeded cases and
writes golden.json next to this file; monitor/stat's tests read it and compare
values to 1e-9 relative and p-values to 1e-6 absolute and 1e-5 relative (the
distribution functions tighter: see TestGoldenDistributions).

    .deps/venv/bin/python monitor/stat/testdata/golden.py

(`bash scripts/deps.sh python` creates .deps/venv.) Definitions that scipy does
not fix are spelled out here exactly as in the Go doc comments:

- bins: interior edges = unique(numpy.quantile(reference, i/10, "linear"),
  i = 1..9); bin of x = numpy.digitize(x, edges) (left-closed bins).
- PSI: pseudo-count 0.5 per bin over the bins non-empty in either window,
  sum((q - p) * ln(q / p)).
- Hellinger: (1/sqrt 2) * ||sqrt p - sqrt q||_2 (checked equal to
  sqrt(1 - sum sqrt(p q))).
- wasserstein_norm: wasserstein_distance / numpy.std(reference) (ddof=0).
- chi_square: chi2_contingency(2 x K table, correction=False) after dropping
  categories empty in both windows; with K < 2 scipy gives 0 and 1.
- unseen_share, l_infinity: plain numpy.

Where scipy raises (or the Go package deliberately refuses), the case records
the Go error class instead of a number: "insufficient" or "undefined".
"""

import json
import math
import os
import warnings

import numpy as np
import scipy
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

assert np.__version__ == "2.2.6", np.__version__
assert scipy.__version__ == "1.15.3", scipy.__version__

PSI_ALPHA = 0.5
BINS = 10


def expand(s):
    v = np.asarray(s["values"], dtype=float)
    if s.get("counts") is None:
        return v
    return np.repeat(v, np.asarray(s["counts"], dtype=np.int64))


def sample(x, decimals=None, as_counts=False):
    x = np.sort(np.asarray(x, dtype=float))
    if decimals is not None:
        x = np.round(x, decimals)
        x = np.sort(x)
    if as_counts:
        v, c = np.unique(x, return_counts=True)
        return {"values": v.tolist(), "counts": c.tolist()}
    return {"values": x.tolist(), "counts": None}


def psi(r, c):
    r = np.asarray(r, dtype=float)
    c = np.asarray(c, dtype=float)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    k = r.size
    p = (r + PSI_ALPHA) / (r.sum() + PSI_ALPHA * k)
    q = (c + PSI_ALPHA) / (c.sum() + PSI_ALPHA * k)
    return float(np.sum((q - p) * np.log(q / p)))


def hellinger(r, c):
    p = np.asarray(r, dtype=float) / np.sum(r)
    q = np.asarray(c, dtype=float) / np.sum(c)
    h = float(np.linalg.norm(np.sqrt(p) - np.sqrt(q)) / math.sqrt(2))
    other = math.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(p * q)))))
    assert abs(h - other) < 1e-7, (h, other)
    return h


def val(v, p=None, how=None):
    out = {"value": float(v)}
    if p is not None:
        out["pvalue"] = float(p)
    if how is not None:
        out["pvalue_method"] = how
    return out


def err(kind):
    return {"error": kind}


def binned(r, c):
    r = np.asarray(r)
    c = np.asarray(c)
    if r.sum() == 0 or c.sum() == 0:
        return {m: err("insufficient") for m in ("psi", "jensen_shannon", "hellinger")}
    return {
        "psi": val(psi(r, c)),
        "jensen_shannon": val(jensenshannon(r, c, base=2)),
        "hellinger": val(hellinger(r, c)),
    }


def numeric_case(name, ref, cur):
    a, b = expand(ref), expand(cur)
    exp = {}
    if a.size == 0 or b.size == 0:
        for m in ("ks", "wasserstein", "wasserstein_norm", "anderson_darling", "cramer_von_mises"):
            exp[m] = err("insufficient")
        case = {"name": name, "reference": ref, "current": cur, "expected": exp}
        if a.size > 0:
            edges = np.unique(np.quantile(a, np.arange(1, BINS) / BINS))
            case["edges"] = edges.tolist()
            case["bins_reference"] = np.bincount(np.digitize(a, edges), minlength=edges.size + 1).tolist()
            case["bins_current"] = [0] * (edges.size + 1)
            exp.update(binned(case["bins_reference"], case["bins_current"]))
        return case

    ks = stats.ks_2samp(a, b, alternative="two-sided", method="auto")
    how = "exact" if max(a.size, b.size) <= 10000 else "asymptotic"
    exp["ks"] = val(ks.statistic, ks.pvalue, how)
    # KSAsymptotic (a slice's sample of a larger window, thousands of rows):
    # method="asymp", on the cases of 100 rows a side or more.
    if min(a.size, b.size) >= 100:
        ksa = stats.ks_2samp(a, b, alternative="two-sided", method="asymp")
        exp["ks_asymptotic"] = val(ksa.statistic, ksa.pvalue, "asymptotic")
    exp["wasserstein"] = val(stats.wasserstein_distance(a, b))
    sd = np.std(a)
    exp["wasserstein_norm"] = err("undefined") if sd == 0 else val(stats.wasserstein_distance(a, b) / sd)

    if a.size + b.size < 4:
        exp["anderson_darling"] = err("insufficient")
    elif np.unique(np.concatenate([a, b])).size < 2:
        exp["anderson_darling"] = err("undefined")
    else:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            ad = stats.anderson_ksamp([a, b])
        how = "interpolated"
        for x in w:
            if "capped" in str(x.message):
                how = "capped"
            if "floored" in str(x.message):
                how = "floored"
        exp["anderson_darling"] = val(ad.statistic, ad.pvalue, how)

    if a.size < 2 or b.size < 2:
        exp["cramer_von_mises"] = err("insufficient")
    else:
        cvm = stats.cramervonmises_2samp(a, b, method="auto")
        how = "exact" if max(a.size, b.size) <= 20 else "asymptotic"
        exp["cramer_von_mises"] = val(cvm.statistic, cvm.pvalue, how)

    edges = np.unique(np.quantile(a, np.arange(1, BINS) / BINS))
    br = np.bincount(np.digitize(a, edges), minlength=edges.size + 1)
    bc = np.bincount(np.digitize(b, edges), minlength=edges.size + 1)
    exp.update(binned(br, bc))
    return {
        "name": name,
        "reference": ref,
        "current": cur,
        "edges": edges.tolist(),
        "bins_reference": br.tolist(),
        "bins_current": bc.tolist(),
        "expected": exp,
    }


def categorical_case(name, ref, cur):
    labels = sorted(set(ref) | set(cur))
    r = np.array([ref.get(k, 0) for k in labels], dtype=np.int64)
    c = np.array([cur.get(k, 0) for k in labels], dtype=np.int64)
    exp = {}
    if r.sum() == 0 or c.sum() == 0:
        for m in ("psi", "jensen_shannon", "hellinger", "chi_square", "l_infinity", "unseen_share"):
            exp[m] = err("insufficient")
    else:
        exp.update(binned(r, c))
        keep = (r + c) > 0
        table = np.vstack([r[keep], c[keep]])
        res = stats.chi2_contingency(table, correction=False)
        exp["chi_square"] = val(res.statistic, res.pvalue, "asymptotic")
        p, q = r / r.sum(), c / c.sum()
        exp["l_infinity"] = val(np.max(np.abs(p - q)))
        exp["unseen_share"] = val(c[r == 0].sum() / c.sum())
    return {"name": name, "reference": ref, "current": cur, "expected": exp}


def main():
    rng = np.random.default_rng(20240611)
    N = rng.normal
    numeric = [
        numeric_case("tiny_exact_8_6", sample(N(0, 1, 8)), sample(N(0.8, 1, 6))),
        numeric_case("equal_n_15", sample(N(0, 1, 15)), sample(N(0.7, 1, 15))),
        numeric_case("cvm_exact_20_20", sample(N(0, 1, 20)), sample(N(0.4, 1.2, 20))),
        numeric_case("cvm_exact_ties_10_12", sample(rng.integers(0, 5, 10)), sample(rng.integers(1, 6, 12))),
        numeric_case("normal_shift_30_25", sample(N(0, 1, 30)), sample(N(0.5, 1, 25))),
        numeric_case("normal_shift_500_400", sample(N(0, 1, 500)), sample(N(0.1, 1, 400))),
        numeric_case("normal_scale_2000_2000", sample(N(0, 1, 2000)), sample(N(0, 1.08, 2000))),
        numeric_case("exact_square_10000", sample(N(0, 1, 10000), 3, True), sample(N(0.02, 1, 10000), 3, True)),
        numeric_case("exact_inside_10000_7001", sample(N(0, 1, 10000), 3, True), sample(N(0.03, 1, 7001), 3, True)),
        # Its own generator, so the cases after it keep their numbers.
        numeric_case("exact_inside_6000_5000", sample(np.random.default_rng(2026).normal(0, 1, 6000), 3, True),
                     sample(np.random.default_rng(2027).normal(0.05, 1, 5000), 3, True)),
        numeric_case("asymp_12000_50_same", sample(N(0, 1, 12000), 2, True), sample(N(0, 1, 50))),
        numeric_case("asymp_12000_50_shift", sample(N(0, 1, 12000), 2, True), sample(N(0.35, 1, 50))),
        numeric_case("asymp_12000_50_far", sample(N(0, 1, 12000), 2, True), sample(N(1.2, 1, 50))),
        numeric_case("asymp_12000_3000_same", sample(N(0, 1, 12000), 2, True), sample(N(0, 1, 3000), 2, True)),
        numeric_case("asymp_12000_3000_small", sample(N(0, 1, 12000), 2, True), sample(N(0.04, 1, 3000), 2, True)),
        numeric_case("asymp_12000_3000_shift", sample(N(0, 1, 12000), 2, True), sample(N(0.12, 1, 3000), 2, True)),
        numeric_case("asymp_30000_20000_pelzgood", sample(N(0, 1, 30000), 2, True), sample(N(0.015, 1, 20000), 2, True)),
        numeric_case("asymp_200000_150000_ties", sample(rng.poisson(4.0, 200000), None, True),
                     sample(rng.poisson(4.05, 150000), None, True)),
        numeric_case("lognormal_ties_counts", sample(rng.lognormal(0, 1, 3000), 1, True), sample(rng.lognormal(0.1, 1, 2500), 1, True)),
        numeric_case("identical_50", sample(np.arange(50) / 7.0), sample(np.arange(50) / 7.0)),
        numeric_case("disjoint_40_30", sample(N(0, 1, 40)), sample(N(10, 1, 30))),
        numeric_case("one_row_each", sample([1.0]), sample([2.0])),
        numeric_case("one_row_current", sample(N(0, 1, 30)), sample([0.5])),
        numeric_case("constant_both", sample(np.full(20, 3.0)), sample(np.full(20, 3.0))),
        numeric_case("constant_reference", sample(np.full(25, 3.0)), sample(N(3, 1, 25))),
        numeric_case("constant_current", sample(N(3, 1, 25)), sample(np.full(25, 3.0))),
        numeric_case("empty_current", sample(N(0, 1, 30)), sample([])),
        numeric_case("n3_pooled", sample([0.0, 1.0]), sample([2.0])),
    ]

    rc = rng.multinomial(100000, [0.5, 0.3, 0.15, 0.05])
    cc = rng.multinomial(90000, [0.48, 0.31, 0.16, 0.05])
    categorical = [
        categorical_case("same_shares", {"a": 500, "b": 300, "c": 200}, {"a": 250, "b": 150, "c": 100}),
        categorical_case("shifted", {"a": 500, "b": 300, "c": 200}, {"a": 200, "b": 300, "c": 500}),
        categorical_case("unseen_in_reference", {"a": 500, "b": 500}, {"a": 400, "b": 400, "new": 50, "newer": 7}),
        categorical_case("vanished_in_current", {"a": 500, "b": 300, "gone": 200}, {"a": 600, "b": 400}),
        categorical_case("single_category", {"a": 10}, {"a": 7}),
        categorical_case("disjoint", {"a": 10, "b": 5}, {"c": 3, "d": 9}),
        categorical_case("multinomial_large", dict(zip("wxyz", map(int, rc))), dict(zip("wxyz", map(int, cc)))),
        categorical_case("empty_current", {"a": 10, "b": 5}, {}),
        categorical_case("empty_reference", {}, {"a": 10}),
    ]
    # Many categories, so the chi-square p-value comes from the survival
    # function at 30 degrees of freedom and more (31, 51, 101 and 1001
    # categories: df 30, 50, 100, 1000), each with the same shares and with
    # a shift. A generator of its own leaves the cases above unchanged.
    many = np.random.default_rng(20261204)
    for k in (31, 51, 101, 1001):
        labels = [f"k{i:04d}" for i in range(k)]
        shares = many.dirichlet(np.full(k, 2.0))
        shifted = shares * np.exp(many.normal(0, 0.15, k))
        shifted /= shifted.sum()
        n = 200 * k
        for tag, q in (("same", shares), ("shifted", shifted)):
            rc = many.multinomial(n, shares)
            cc = many.multinomial(n // 2, q)
            categorical.append(categorical_case(f"many_{k}_{tag}", dict(zip(labels, map(int, rc))),
                                                dict(zip(labels, map(int, cc)))))

    bh = []
    for ps in ([0.01, 0.04, 0.03, 0.2, 0.5], [0.001, 0.001, 0.02, 0.02, 0.049, 0.9, 1.0, 0.0],
               rng.uniform(0, 0.1, 30).tolist(), [0.3], []):
        adj = stats.false_discovery_control(ps, method="bh") if ps else np.array([])
        adj = np.atleast_1d(adj)
        bh.append({"ps": [float(p) for p in ps], "q": 0.05, "adjusted": adj.tolist(),
                   "reject": (adj <= 0.05).tolist()})

    # k-sample Anderson-Darling with k = 3 (the monitor uses k = 2; the
    # function takes any k >= 2).
    def ad_k(ss):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            res = stats.anderson_ksamp([expand(x) for x in ss])
        how = "interpolated"
        for x in w:
            if "capped" in str(x.message):
                how = "capped"
            if "floored" in str(x.message):
                how = "floored"
        return {"samples": ss, "value": float(res.statistic), "pvalue": float(res.pvalue), "pvalue_method": how}

    ad3 = []
    for shift in (0.0, 0.4):
        ss = [sample(N(0, 1, 40)), sample(N(0, 1, 35), 1), sample(N(shift, 1, 30))]
        ad3.append(ad_k(ss))
    # The floored end for k = 3, and k = 4 (m = 3) at both ends and between,
    # from a generator of their own (the cases above stay as they were).
    adg = np.random.default_rng(20261205)
    ad3.append(ad_k([sample(adg.normal(0, 1, 40)), sample(adg.normal(0, 1, 35)), sample(adg.normal(1.5, 1, 30))]))
    for shift in (0.0, 0.45, 1.5):
        ad3.append(ad_k([sample(adg.normal(0, 1, 50)), sample(adg.normal(0, 1, 45), 1),
                         sample(adg.normal(0, 1, 40)), sample(adg.normal(shift, 1, 35))]))

    # Distribution functions on grids that cross every branch of scipy's
    # kolmogn, smirnov, the chi-square survival function and the limiting
    # Cramér–von Mises CDF.
    kstwo = []
    for n in (1, 2, 5, 20, 50, 140, 141, 1000, 2400, 20000, 150000):
        for x in (0.3 / n, 0.8 / n, 1.5 / n, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1 - 1.5 / n, 0.99, 0.5 / math.sqrt(n),
                  0.9 / math.sqrt(n), 1.3 / math.sqrt(n), 1.8 / math.sqrt(n), 3.0 / math.sqrt(n)):
            if 0 < x < 1:
                kstwo.append({"n": n, "x": x, "sf": float(stats.kstwo.sf(x, n))})
    smirnov = [{"n": n, "x": x, "sf": float(special.smirnov(n, x))}
               for n in (1, 3, 10, 100, 1000, 20000) for x in (0.01, 0.05, 0.1, 0.3, 0.5, 0.9)]
    chi2 = [{"df": df, "x": x, "sf": float(stats.chi2.sf(x, df))}
            for df in (1, 2, 3, 7, 30, 200) for x in (0.001, 0.5, 1, 3, 10, 50, 250)]
    # Many degrees of freedom (what a categorical feature with 31+ categories
    # asks for), odd and even, across the bulk, on both sides of x = df + 2
    # where the series gives way to the continued fraction, and far in both
    # tails.
    for df in (30, 31, 50, 51, 100, 101, 999, 1000):
        for x in sorted({df * r for r in (0.3, 0.5, 0.8, 0.9, 0.97, 1.0, 1.03, 1.1, 1.25, 1.5, 2.0, 3.0)} |
                        {df + 1.9, df + 2.0, df + 2.1}):
            chi2.append({"df": df, "x": float(x), "sf": float(stats.chi2.sf(x, df))})
    from scipy.stats._hypotests import _cdf_cvm_inf
    cvm_inf = [{"x": x, "cdf": float(_cdf_cvm_inf(x))} for x in (0.01, 0.03, 0.1, 0.2, 0.461, 0.75, 1.2, 2.0, 3.5)]

    out = {
        "generator": "monitor/stat/testdata/golden.py",
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "bins": BINS,
        "psi_smoothing": PSI_ALPHA,
        "numeric": numeric,
        "categorical": categorical,
        "benjamini_hochberg": bh,
        "anderson_darling_k3": ad3,
        "kstwo_sf": kstwo,
        "smirnov_sf": smirnov,
        "chi2_sf": chi2,
        "cvm_cdf_inf": cvm_inf,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}: {len(numeric)} numeric, {len(categorical)} categorical cases")


if __name__ == "__main__":
    main()
