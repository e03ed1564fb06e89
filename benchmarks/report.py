"""Markdown tables from the benchmark's results dictionary (see ``benchmark.run``)."""
from __future__ import annotations

LABELS = {"cra5": "cra5codec", "sz3": "SZ3", "zfp": "ZFP", "sperr": "SPERR",
          "bitround": "BitRound+Zstd"}
BASELINES = ("sz3", "zfp", "sperr", "bitround")


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _g(x) -> str:
    return f"{x:.4g}"


def _ratio_cell(results, codec, point, target) -> str:
    """A baseline's ratio at a target RMSE; ``*`` when its RMSE is not within the
    match tolerance below the target (zfp's error moves in powers of two)."""
    if codec not in results["config"]["codecs"]:
        return "—"
    if point is None:
        return "not reached"
    close = point["rmse"] >= (1 - results["config"]["rmse_match_rtol"]) * target
    return f"{point['ratio']:.1f}" + ("" if close else "*")


def markdown_report(results) -> str:
    """The three tables, with the machine and skipped codecs noted above them."""
    m, cfg = results["machine"], results["config"]
    out = [f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, {m['platform']}; "
           f"torch threads {m.get('torch_threads')}, cra5codec on {m.get('cra5_device') or 'n/a'}"
           + (f" ({m['cra5_precision']})" if m.get("cra5_precision") else "") + "; "
           f"load average {m['load_average_1_5_15min'][0]:.2f}.",
           f"Fields per variable: {cfg['fields_per_variable']} on a "
           f"{cfg['grid'][0]} x {cfg['grid'][1]} grid, each compressed as its own chunk."]
    out += [f"Skipped {LABELS.get(k, k)}: {v}" for k, v in results["skipped"].items()]

    out += ["", "## All measured settings", ""]
    rows = [[p["variable"], LABELS[p["codec"]], p["setting_text"], f"{p['ratio']:.1f}",
             _g(p["rmse"]), _g(p["lat_rmse"]), _g(p["max_error"]),
             f"{p['enc_mbps']:.1f}", f"{p['dec_mbps']:.1f}"] for p in results["results"]]
    out.append(_table(["variable", "codec", "setting", "ratio", "RMSE", "lat-weighted RMSE",
                       "max error", "enc MB/s", "dec MB/s"], rows))

    out += ["", "## Ratio at matched RMSE", ""]
    if results["matched"]:
        rows = [[r["variable"], r["cra5_quality"], _g(r["cra5_rmse"]), f"{r['cra5_ratio']:.1f}"]
                + [_ratio_cell(results, b, r["baselines"].get(b), r["cra5_rmse"])
                   for b in BASELINES] for r in results["matched"]]
        out.append(_table(["variable", "cra5 quality", "cra5 RMSE", "cra5 ratio"]
                          + [f"{LABELS[b]} ratio" for b in BASELINES], rows))
    else:
        out.append("(no cra5codec results: nothing to match)")

    out += ["", "## Ratio at the original CRA5's published RMSE", ""]
    rows = []
    for r in results["at_published_rmse"]:
        c = r["cra5_ratio"]
        cra5 = "—" if "cra5" not in cfg["codecs"] else ("not reached" if c is None else f"{c:.1f}")
        rows.append([r["variable"], _g(r["target_rmse"]), cra5]
                    + [_ratio_cell(results, b, r["baselines"].get(b), r["target_rmse"])
                       for b in BASELINES])
        best = max((r["baselines"][b]["ratio"] for b in BASELINES if r["baselines"].get(b)), default=None)
        rows[-1].append("—" if c is None or not best else f"{c / best:.2f}x")
    out.append(_table(["variable", "target RMSE", "cra5codec"] + [LABELS[b] for b in BASELINES]
                      + ["cra5codec / best classical"], rows))

    if results.get("at_high_ratio"):
        ratio = results["at_high_ratio"][0]["ratio"]
        out += ["", f"## Latitude-weighted RMSE at {ratio:.0f}x", ""]
        rows = []
        for r in results["at_high_ratio"]:
            c = r["cra5_lat_rmse"]
            cells = [("not reached" if p is None else f"{_g(p['lat_rmse'])} ({p['ratio']:.0f}x)")
                     if b in cfg["codecs"] else "—" for b, p in ((b, r["baselines"].get(b)) for b in BASELINES)]
            best = min((p["lat_rmse"] for p in r["baselines"].values() if p), default=None)
            rows.append([r["variable"], "—" if "cra5" not in cfg["codecs"] else
                         ("not reached" if c is None else _g(c))] + cells
                        + ["—" if c is None or not best else f"{c / best:.2f}"])
        out.append(_table(["variable", "cra5codec"] + [LABELS[b] for b in BASELINES]
                          + ["cra5codec / best classical"], rows))
        out += ["", f"A baseline's entry is its most accurate setting reaching at least {ratio:.0f}x "
                "(its ratio in brackets); cra5codec's is interpolated between quality levels "
                "(log RMSE vs log ratio); \"not reached\": no level or setting gets there."]
    out += ["", "Ratios are float32 bytes / compressed bytes over all fields. A baseline's "
            "ratio at a target is the best of its measured settings whose RMSE does not "
            "exceed the target (bisection aims at within "
            f"{cfg['rmse_match_rtol']:.0%} below it; * = that setting's RMSE is further below, "
            "as the codec's error jumps there); cra5codec at a published target is "
            "interpolated between quality levels (log ratio vs log RMSE)."]
    return "\n".join(out)
