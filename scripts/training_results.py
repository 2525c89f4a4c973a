#!/usr/bin/env python3
"""Summarises the GPU training results (scripts/gpu_train.sh evaluate) as Markdown tables for the
README: per model and held-out sample, loss overall and beyond position 2048 and the relative
attention cost C; and the zero-shot boundary sweep of the all-full 8k model.
    training_results.py RESULTS_DIR > table.md"""
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


def main(d):
    samples = sorted({os.path.basename(p).split(".", 1)[1][:-5] for p in glob.glob(os.path.join(d, "full8k.*.json"))})
    print("| model | C | " + " | ".join(samples) + " | mean |")
    print("|---|---|" + "---|" * (len(samples) + 1))
    for m, label in MODELS:
        cells, overall, cost = [], [], None
        for s in samples:
            p = os.path.join(d, "%s.%s.json" % (m, s))
            if not os.path.exists(p):
                cells.append("–")
                continue
            r = json.load(open(p))
            loss = r["mean_loss"]
            cost = r["cost"]["relative_cost"] if "cost" in r else cost
            cells.append("%.3f / %.3f" % (loss, beyond(r["token_loss"])))
            overall.append(loss)
        if overall:
            print("| %s | %s | %s | %.3f |" % (label, "%.3f" % cost if cost is not None else "?", " | ".join(cells),
                                                sum(overall) / len(overall)))
    print("\nCells: loss in nats/token over the whole sample / over tokens beyond position 2048.\n")
    print("Zero-shot boundary sweep of the all-full 8k model (window 512 above l), mean over samples:\n")
    print("| l | C | loss | loss beyond 2048 |\n|---|---|---|---|")
    sweeps = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(d, "sweep.full8k.*.json")))]
    if sweeps:
        for i, point in enumerate(sweeps[0]["points"]):
            losses = [s["points"][i]["mean_loss"] for s in sweeps]
            far = [s["points"][i].get("mean_loss_beyond_2048") for s in sweeps]
            far = [x for x in far if x is not None and not math.isnan(x)]
            print("| %d | %.3f | %.3f | %s |" % (point["boundary"], point["relative_cost"], sum(losses) / len(losses),
                                                "%.3f" % (sum(far) / len(far)) if far else "–"))


if __name__ == "__main__":
    main(sys.argv[1])
