#!/usr/bin/env python3
"""Summarises the GPU training results (the results/ folder scripts/gpu_train.sh writes) as
Markdown tables for the README: per model and held-out sample, loss overall and beyond position
2048 and the relative attention cost C; and the zero-shot boundary sweep of the all-full 8k model.
    training_results.py RESULTS_DIR [--summary OUT.json] > tables.md
    training_results.py SUMMARY.json > tables.md       (the same tables from a kept summary)
The summary keeps the numbers the tables need (the analysis JSONs are ~80 MB)."""
import glob
import json
import math
import os
import sys

MODELS = [("pretrain2k", "pretrained, full, 2k context"), ("full8k", "continual 8k, all full"),
          ("masformer4", "continual 8k, MASFormer l=4, window 512"),
          ("masformer2", "continual 8k, MASFormer l=2, window 512"), ("window512", "continual 8k, all window 512")]


def beyond(losses, start=2048):
    tail = [x for x in losses[start - 1:] if x is not None]  # loss index t-1 predicts token t
    return sum(tail) / len(tail) if tail else float("nan")


def summarise(d):
    """{"models": {model: {sample: {...}}}, "sweeps": {sample: [points]}} from a results folder."""
    samples = sorted({os.path.basename(p).split(".", 1)[1][:-5] for p in glob.glob(os.path.join(d, "full8k.*.json"))})
    if not samples:
        sys.exit("%s: no full8k.<sample>.json analyses" % d)
    out = {"samples": samples, "models": {}, "sweeps": {}}
    for m, _ in MODELS:
        for s in samples:
            p = os.path.join(d, "%s.%s.json" % (m, s))
            if os.path.exists(p):
                r = json.load(open(p))
                out["models"].setdefault(m, {})[s] = {
                    "mean_loss": r["mean_loss"], "mean_loss_beyond_2048": beyond(r["token_loss"]),
                    "tokens": len(r["token_loss"]) + 1, "relative_cost": r["cost"]["relative_cost"],
                    "pattern": r["cost"]["pattern"]}
    for s in samples:
        p = os.path.join(d, "sweep.full8k.%s.json" % s)
        if os.path.exists(p):
            out["sweeps"][s] = [{k: pt.get(k) for k in ("boundary", "relative_cost", "mean_loss", "mean_loss_beyond_2048")}
                                for pt in json.load(open(p))["points"]]
    return out


def tables(summary):
    samples = summary["samples"]
    print("| model | C | " + " | ".join(samples) + " | mean |")
    print("|---|---|" + "---|" * (len(samples) + 1))
    for m, label in MODELS:
        runs = summary["models"].get(m, {})
        if not runs:
            continue
        cells = ["%.3f / %.3f" % (runs[s]["mean_loss"], runs[s]["mean_loss_beyond_2048"]) if s in runs else "–"
                 for s in samples]
        overall = [runs[s]["mean_loss"] for s in samples if s in runs]
        cost = next(iter(runs.values()))["relative_cost"]
        print("| %s | %.3f | %s | %.3f |" % (label, cost, " | ".join(cells), sum(overall) / len(overall)))
    print("\nCells: loss in nats/token over the sample / over tokens beyond position 2048.\n")
    print("Zero-shot boundary sweep of the all-full 8k model (window 512 above l), mean over samples:\n")
    print("| l | C | loss | loss beyond 2048 |\n|---|---|---|---|")
    sweeps = list(summary["sweeps"].values())
    for i, point in enumerate(sweeps[0] if sweeps else []):
        losses = [s[i]["mean_loss"] for s in sweeps]
        far = [s[i]["mean_loss_beyond_2048"] for s in sweeps]
        far = [x for x in far if x is not None and not math.isnan(x)]
        print("| %d | %.3f | %.3f | %s |" % (point["boundary"], point["relative_cost"], sum(losses) / len(losses),
                                            "%.3f" % (sum(far) / len(far)) if far else "–"))


def main(argv):
    if not argv:
        sys.exit(__doc__)
    if argv[0].endswith(".json"):
        summary = json.load(open(argv[0]))
    else:
        summary = summarise(argv[0])
        if len(argv) == 3 and argv[1] == "--summary":
            with open(argv[2] + ".part", "w") as f:
                json.dump(summary, f, indent=1)
            os.replace(argv[2] + ".part", argv[2])
    tables(summary)


if __name__ == "__main__":
    main(sys.argv[1:])
