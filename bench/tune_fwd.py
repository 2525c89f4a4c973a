"""Tuning helper: forward TFLOP/s and the statistics pass's extra time over one forward, with its
features switched on one by one (beyond span, sink, pooled map size, exact rows), on a few shapes.
Usage: python bench/tune_fwd.py LIB   (scripts/gpu_check.sh tune)"""
import math
import sys

import torch
from triton.testing import do_bench

torch.ops.load_library(sys.argv[1])
op = torch.ops.spanscope.span_attention
stats = torch.ops.spanscope.span_attention_stats
dev = "cuda"


def pairs(kind, n, span):
    i = torch.arange(n, dtype=torch.float64)
    if kind == "full":
        return float((i + 1).sum())
    if kind == "window":
        return float(torch.clamp(i + 1, max=span).sum())
    return float((i % span + 1).sum())


for d in (64, 128):
    H = 2048 // d
    for kind, span in (("full", 0), ("window", 512), ("window", 2048), ("block", 1024)):
        n, B = 16384, 1
        q, k, v = (torch.randn(B, H, n, d, device=dev, dtype=torch.bfloat16) for _ in range(3))
        flops = 4.0 * d * pairs(kind, n, span) * B * H
        ms = do_bench(lambda: op(q, k, v, kind, span, False, 1 / math.sqrt(d)), warmup=25, rep=100, return_mode="median")
        res = [f"{flops / ms / 1e9:6.1f}"]
        q1, k1, v1 = q[:1].contiguous(), k[:1].contiguous(), v[:1].contiguous()
        t_f = do_bench(lambda: op(q1, k1, v1, kind, span, False, 0.125), warmup=25, rep=100, return_mode="median")
        cfgs = [(0, 0, 0, []), (2048, 0, 0, []), (2048, 4, 0, []), (2048, 4, 128, []), (2048, 4, 256, [0]), (2048, 4, 1024, [0])]
        t_s = [do_bench(lambda: stats(q1, k1, v1, kind, span, False, 0.125, b, sk, P, rows), warmup=25, rep=100,
                        return_mode="median") for b, sk, P, rows in cfgs]
        print(f"d={d:3d} {kind}{span:<5d} TFLOP/s: " + "  ".join(res) + f"  fwd(B=1) {t_f:.3f} ms; stats extra/fwd " +
              "  ".join(f"[b{b} s{sk} P{P} r{len(rows)}] {(t - t_f) / t_f:.2f}" for (b, sk, P, rows), t in zip(cfgs, t_s)), flush=True)
