#!/usr/bin/env python3
"""Loss per position range over whole documents (past the models' training context), from
`spanscope-cli analyze --json` files named MODEL.SAMPLE.json: a Markdown table of the mean over
samples for each model and range, with the number of samples that reach the range.
    whole_documents.py ANALYSIS.json... > table.md"""
import json
import os
import sys

RANGES = [(0, 2048), (2048, 8192), (8192, 16384), (16384, 32768), (32768, None)]


def label(a, b):
    k = lambda n: "%dk" % (n // 1024) if n else "0"
    return "%s–%s" % (k(a), k(b) if b else "end")


def main(paths):
    if not paths:
        sys.exit(__doc__)
    per = {}  # model -> range index -> [per-sample means]
    order = []
    for p in paths:
        model = os.path.basename(p).split(".")[0]
        if model not in per:
            order.append(model)
        losses = json.load(open(p))["token_loss"]  # index t-1: loss of token t
        for i, (a, b) in enumerate(RANGES):
            seg = [x for x in losses[max(a - 1, 0):(b - 1 if b else None)] if x is not None]
            if seg:
                per.setdefault(model, {}).setdefault(i, []).append(sum(seg) / len(seg))
    print("| model | " + " | ".join(label(a, b) for a, b in RANGES) + " |")
    print("|---|" + "---|" * len(RANGES))
    for m in order:
        cells = ["%.2f (%d)" % (sum(v) / len(v), len(v)) if (v := per[m].get(i)) else "–" for i in range(len(RANGES))]
        print("| %s | %s |" % (m, " | ".join(cells)))


if __name__ == "__main__":
    main(sys.argv[1:])
