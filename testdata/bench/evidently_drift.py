#!/usr/bin/env python3
"""Evidently's side of `driftwatch bench monitor`.

Reads the Parquet file the benchmark exported from ClickHouse (one row per
inference: column `is_cur` says the window, then one column per feature),
runs Evidently's DataDriftPreset on reference vs current, and writes JSON
with the wall time of every pass and the per-column drift scores.

Passes (each a Report with one DataDriftPreset; timed around Report.run and
snapshot.dict(), after the data are in memory):

  default         DataDriftPreset() with Evidently's own method choice
  ks+chisquare    num_method="ks", cat_method="chisquare"
  psi+psi         num_method="psi", cat_method="psi"
  wasserstein+jensenshannon
                  num_method="wasserstein", cat_method="jensenshannon"
  jensenshannon   num_method="jensenshannon", numeric columns only

The last four together compute what driftwatch's default policy computes,
except unseen_share, which Evidently does not have. Scores are Evidently's
drift_score: a p-value for ks and chisquare, a distance otherwise.

Usage: evidently_drift.py --parquet FILE --out FILE [--repeat K] [--passes NAME,...]
"""

import argparse
import json
import sys
import time

import evidently
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

PASSES = [
    ("default", None, None, "all"),
    ("ks+chisquare", "ks", "chisquare", "all"),
    ("psi+psi", "psi", "psi", "all"),
    ("wasserstein+jensenshannon", "wasserstein", "jensenshannon", "all"),
    ("jensenshannon", "jensenshannon", None, "numeric"),
]


def scores(snapshot_dict):
    """column -> (method, score) from a snapshot's ValueDrift metrics."""
    out = {}
    for m in snapshot_dict["metrics"]:
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith(":ValueDrift"):
            out[cfg["column"]] = {"method": cfg.get("method"), "score": float(m["value"])}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parquet", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--passes", default="", help="comma-separated pass names to run (default: all)")
    args = ap.parse_args()
    names = [p[0] for p in PASSES]
    wanted = [n for n in args.passes.split(",") if n] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        ap.error(f"unknown pass {', '.join(unknown)}; passes are {', '.join(names)}")

    t0 = time.perf_counter()
    df = pd.read_parquet(args.parquet)
    is_cur = df.pop("is_cur").astype(bool).to_numpy()
    numeric = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    categorical = [c for c in df.columns if c not in numeric]
    ref_df = df[~is_cur].reset_index(drop=True)
    cur_df = df[is_cur].reset_index(drop=True)
    del df
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    ref = Dataset.from_pandas(ref_df, data_definition=definition)
    cur = Dataset.from_pandas(cur_df, data_definition=definition)
    load = time.perf_counter() - t0
    print(f"evidently: loaded {len(ref_df)} reference and {len(cur_df)} current rows, "
          f"{len(numeric)} numeric and {len(categorical)} categorical columns in {load:.1f}s",
          file=sys.stderr, flush=True)

    result = {"evidently": evidently.__version__, "pandas": pd.__version__, "load_seconds": load,
              "reference_rows": len(ref_df), "current_rows": len(cur_df), "passes": []}
    for name, num_method, cat_method, which in PASSES:
        if name not in wanted:
            continue
        columns = numeric + categorical if which == "all" else numeric
        p = {"name": name, "num_method": num_method, "cat_method": cat_method, "seconds": [], "scores": {}}
        for i in range(args.repeat):
            preset = DataDriftPreset(columns=columns, num_method=num_method, cat_method=cat_method)
            t = time.perf_counter()
            snap = Report([preset]).run(cur, ref)
            d = snap.dict()
            p["seconds"].append(time.perf_counter() - t)
            if i == 0:
                p["scores"] = scores(d)
            print(f"evidently: pass {name} run {i + 1}: {p['seconds'][-1]:.1f}s", file=sys.stderr, flush=True)
        result["passes"].append(p)
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
