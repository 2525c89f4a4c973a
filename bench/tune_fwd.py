"""Tuning helper: forward TFLOP/s and the statistics pass's extra time over one forward, with its
features switched on one by one (beyond span, sink, pooled map size, exact rows), on a few shapes.
Usage: python bench/tune_fwd.py LIB   (scripts/gpu_check.sh tune)
       python bench/tune_fwd.py LIB --variants   forward kernels side by side (SPANSCOPE_FWD_KERNEL:
       mma, sm90:0..6; FWD_KERNELS=a,b,.. picks some) with SDPA-cuDNN / FlexAttention at N = 16k
       (scripts/gpu_check.sh tune-fwd)
       python bench/tune_fwd.py LIB --stats-variants   the statistics kernels side by side
       (SPANSCOPE_STATS_KERNEL: mma, sm90:0..5; STATS_KERNELS=a,b,.. picks some), extra time over one forward (scripts/gpu_check.sh tune-stats)"""
import math
import os
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


def variants():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    import torch.nn.functional as F
    flex = torch.compile(flex_attention, dynamic=False)
    kernels = os.environ.get("FWD_KERNELS", "mma,sm90:0,sm90:1,sm90:2,sm90:3,sm90:4,sm90:5,sm90:6").split(",")
    for d in (64, 128):
        H = 2048 // d
        for kind, span in (("full", 0), ("window", 512), ("window", 2048), ("block", 1024)):
            n = 16384
            q, k, v = (torch.randn(1, H, n, d, device=dev, dtype=torch.bfloat16) for _ in range(3))
            flops = 4.0 * d * pairs(kind, n, span) * H
            res = []
            for kern in kernels:
                os.environ["SPANSCOPE_FWD_KERNEL"] = kern
                ms = do_bench(lambda: op(q, k, v, kind, span, False, 1 / math.sqrt(d)), warmup=25, rep=100, return_mode="median")
                res.append(f"{kern} {flops / ms / 1e9:6.1f}")
            os.environ.pop("SPANSCOPE_FWD_KERNEL")
            if kind == "full":
                with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                    ms = do_bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), warmup=25, rep=100, return_mode="median")
                res.append(f"cudnn {flops / ms / 1e9:6.1f}")
            else:
                def mm(b, h, qi, ki):
                    ok = qi >= ki
                    return ok & (qi - ki < span) if kind == "window" else ok & (qi // span == ki // span)
                bm = create_block_mask(mm, None, None, n, n, device=dev)
                ms = do_bench(lambda: flex(q, k, v, block_mask=bm), warmup=25, rep=100, return_mode="median")
                res.append(f"flex {flops / ms / 1e9:6.1f}")
            print(f"d={d:3d} {kind}{span:<5d} N={n} TFLOP/s: " + "  ".join(res), flush=True)


def stats_variants():
    kernels = os.environ.get("STATS_KERNELS", "mma,sm90:0,sm90:1,sm90:2,sm90:3,sm90:4,sm90:5").split(",")
    cfgs = [(0, 0, 0, []), (2048, 4, 256, [0, 1]), (2048, 4, 1024, [0, 1])]
    for d in (64, 128):
        H = 2048 // d
        for kind, span in (("full", 0), ("window", 512), ("window", 2048), ("block", 1024)):
            n = 16384
            q, k, v = (torch.randn(1, H, n, d, device=dev, dtype=torch.bfloat16) for _ in range(3))
            t_f = do_bench(lambda: op(q, k, v, kind, span, False, 0.125), warmup=25, rep=100, return_mode="median")
            res = []
            for kern in kernels:
                os.environ["SPANSCOPE_STATS_KERNEL"] = kern
                t_s = [do_bench(lambda: stats(q, k, v, kind, span, False, 0.125, b, sk, P, rows), warmup=25, rep=100,
                                return_mode="median") for b, sk, P, rows in cfgs]
                res.append(f"{kern} " + "/".join(f"{(t - t_f) / t_f:.2f}" for t in t_s))
            os.environ.pop("SPANSCOPE_STATS_KERNEL")
            print(f"d={d:3d} {kind}{span:<5d} N={n} fwd {t_f:.3f} ms; stats extra/fwd [P0 | b2048 s4 P256 r2 | P1024]: "
                  + "  ".join(res), flush=True)


if len(sys.argv) > 2 and sys.argv[2] == "--stats-variants":
    stats_variants()
    sys.exit(0)

if len(sys.argv) > 2 and sys.argv[2] == "--variants":
    variants()
    sys.exit(0)

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
