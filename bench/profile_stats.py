"""Profiling helper (Nsight Compute): runs the forward and the statistics pass once per kernel choice
on d = 64, N = 16k (full mask unless MASK/SPAN are given), with and without the pooled map, so `ncu`
can report each kernel.
Usage: [MASK=window SPAN=512] ncu --kernel-name regex:'stats|fwd' ... python bench/profile_stats.py LIB mma,sm90:0,..."""
import os
import sys

import torch

torch.ops.load_library(sys.argv[1])
n, d, H = 16384, 64, 32
mask, span = os.environ.get("MASK", "full"), int(os.environ.get("SPAN", "0"))
q, k, v = (torch.randn(1, H, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
st = torch.ops.spanscope.span_attention_stats
for kern in sys.argv[2].split(","):
    os.environ["SPANSCOPE_STATS_KERNEL"] = kern
    st(q, k, v, mask, span, False, 0.125, 0, 0, 0, [])
    st(q, k, v, mask, span, False, 0.125, 2048, 4, 256, [0, 1])
torch.cuda.synchronize()
