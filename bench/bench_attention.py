"""Span attention forward (and, with --backward, backward): spanscope's CUDA kernels against
PyTorch's peers, on one GPU.

Usage: python bench/bench_attention.py LIB [--quick] [--backward | --sparsek] [--autotune-budget SECONDS] [--out FILE]
  LIB  path of libspanscope_ops.so (built by CMake when nvcc is present)

Random bf16 inputs, B*N = 16k tokens, H*d = 2048, (B, H, N, d) layout. Times are medians of
triton.testing.do_bench (CUDA events) after warm-up. FLOPs are counted on the exact attended
pairs: 4*d per pair (QK^T and PV). Peers:
  full causal      SDPA pinned to cuDNN and to flash
  window / block   FlexAttention compiled, default and mode="max-autotune", same masks
                   (window: 0 <= q - kv < w; block: same block of size b)
Also the statistics pass relative to one forward, and its peak memory at 128k tokens.
--sparsek: SparseK attention (bench_sparsek below) against FlexAttention running the same
selection and SDPA on gathered keys.
"""
import argparse
import datetime
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import create_block_mask, flex_attention
from triton.testing import do_bench

TOKENS = 16 * 1024
HD = 2048


def attended_pairs(kind, n, span):
    i = torch.arange(n, dtype=torch.float64)
    if kind == "full":
        return float((i + 1).sum())
    if kind == "window":
        return float(torch.clamp(i + 1, max=span).sum())
    return float((i % span + 1).sum())  # block, no previous block


def mask_mod_for(kind, span):
    if kind == "window":
        def window(b, h, q_idx, kv_idx):
            return (q_idx >= kv_idx) & (q_idx - kv_idx < span)
        return window
    if kind == "block":
        def block(b, h, q_idx, kv_idx):
            return (q_idx >= kv_idx) & (q_idx // span == kv_idx // span)
        return block
    def causal(b, h, q_idx, kv_idx):
        return q_idx >= kv_idx
    return causal


def emit_report(args, lines, body):
    """Prints the run's log lines, a blank line and the report body; writes the same to --out."""
    text = "\n".join(lines + [""] + body)
    print("\n" + text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


STATS_ROUNDS = 5  # alternating forward / statistics measurements per configuration


def median_ms(fn):
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--autotune-budget", type=float, default=150.0, help="seconds of max-autotune compiles at most")
    ap.add_argument("--out", default=None)
    ap.add_argument("--stats-only", action="store_true", help="only the statistics pass and its memory")
    ap.add_argument("--dims", default="64,128", help="head dims of the forward table (comma-separated)")
    ap.add_argument("--backward", action="store_true", help="only the backward pass against its peers")
    ap.add_argument("--sparsek", action="store_true", help="only SparseK attention against its peers")
    args = ap.parse_args()
    torch.ops.load_library(args.lib)
    # One compiled FlexAttention per (shape, mask): far more than dynamo's default recompile limit.
    torch._dynamo.config.recompile_limit = 1000
    torch._dynamo.config.accumulated_recompile_limit = 100000
    ours = torch.ops.spanscope.span_attention
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    rows = []
    lines = []

    def log(s):
        print(s, flush=True)
        lines.append(s)

    log(f"device: {props.name}, torch {torch.__version__}, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC")
    flex_default = torch.compile(flex_attention, dynamic=False)
    flex_autotune = torch.compile(flex_attention, dynamic=False, mode="max-autotune")
    autotune_spent = 0.0
    if args.backward:
        return bench_backward(args, log, lines, flex_default, dev)
    if args.sparsek:
        return bench_sparsek(args, log, lines, flex_default, flex_autotune, dev)

    ds = [int(x) for x in args.dims.split(",")]
    full_ns = [2048, 4096, 8192, 16384, 32768]
    sparse_ns = [2048, 4096, 8192, 16384, 32768, 65536]
    sparse = [("window", 512), ("window", 2048), ("block", 1024)]
    if args.quick:
        full_ns, sparse_ns = [8192], [8192]
    if args.stats_only:
        ds = []

    for d in ds:
        H = HD // d
        for kind, span, ns in [("full", 0, full_ns)] + [(k, s, sparse_ns) for k, s in sparse]:
            for n in ns:
                B = max(1, TOKENS // n)
                q, k, v = (torch.randn(B, H, n, d, device=dev, dtype=torch.bfloat16) for _ in range(3))
                scale = 1.0 / math.sqrt(d)
                flops = 4.0 * d * attended_pairs(kind, n, span) * B * H
                t_ours = median_ms(lambda: ours(q, k, v, kind, span, False, scale))
                peers = {}
                if kind == "full":
                    for name, backend in [("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION), ("sdpa-flash", SDPBackend.FLASH_ATTENTION)]:
                        try:
                            with sdpa_kernel([backend]):
                                peers[name] = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale))
                        except Exception as e:  # noqa: BLE001 - report and go on
                            log(f"  {name} failed at d={d} n={n}: {type(e).__name__}: {str(e)[:120]}")
                else:
                    bm = create_block_mask(mask_mod_for(kind, span), None, None, n, n, device="cuda")
                    ref = flex_default(q, k, v, block_mask=bm, scale=scale)
                    out = ours(q, k, v, kind, span, False, scale)[0]
                    diff = (out.float() - ref.float()).abs().max().item()
                    if diff > 0.05:
                        log(f"  WARNING: ours vs flex max diff {diff:.3g} at {kind}{span} d={d} n={n}")
                    peers["flex"] = median_ms(lambda: flex_default(q, k, v, block_mask=bm, scale=scale))
                    if autotune_spent < args.autotune_budget and n in (8192, 16384, 32768):
                        t0 = time.time()
                        flex_autotune(q, k, v, block_mask=bm, scale=scale)
                        torch.cuda.synchronize()
                        autotune_spent += time.time() - t0
                        peers["flex-autotune"] = median_ms(lambda: flex_autotune(q, k, v, block_mask=bm, scale=scale))
                tf = lambda ms: flops / ms / 1e9  # noqa: E731
                row = {"d": d, "kind": f"{kind}{span if span else ''}", "n": n, "B": B, "H": H,
                       "ours": tf(t_ours), "ours_ms": t_ours}
                for name, ms in peers.items():
                    row[name] = tf(ms)
                rows.append(row)
                peer_txt = "  ".join(f"{k} {tf(ms):6.1f} (x{ms / t_ours:4.2f})" for k, ms in peers.items())
                print(f"d={d:3d} {row['kind']:>10s} N={n:6d} B={B:2d} ours {row['ours']:6.1f} TFLOP/s {t_ours:8.3f} ms   {peer_txt}",
                      flush=True)
                del q, k, v
                torch.cuda.empty_cache()

    # Statistics pass: extra time over one forward (B = 1, N = 16k, H * d = 2048).
    stats_lines = []
    n = 16384
    for d in [int(x) for x in args.dims.split(",")]:
        H = HD // d
        q, k, v = (torch.randn(1, H, n, d, device=dev, dtype=torch.bfloat16) for _ in range(3))
        for kind, span in [("full", 0), ("window", 512), ("window", 2048), ("block", 1024)]:
            for pool in [256, 1024]:
                # Forward and statistics op timed alternately, STATS_ROUNDS times: the GPU's clocks
                # drift by up to ~10 % between measurements seconds apart, so one pair of medians
                # can be off by that much; medians over the rounds, and the range of the rounds' ratios.
                fwds, alls = [], []
                for _ in range(STATS_ROUNDS):
                    fwds.append(median_ms(lambda: ours(q, k, v, kind, span, False, 0.125)))
                    alls.append(median_ms(lambda: torch.ops.spanscope.span_attention_stats(
                        q, k, v, kind, span, False, 0.125, 2048, 4, pool, [0, n - 1])))
                t_fwd, t_all = statistics.median(fwds), statistics.median(alls)
                ratios = [(a - f) / f for f, a in zip(fwds, alls)]
                stats_lines.append(f"| {kind}{span if span else ''} | {n} | {H} | {d} | {pool} | {t_fwd:.3f} | {t_all - t_fwd:.3f} | "
                                   f"{(t_all - t_fwd) / t_fwd:.2f} | {min(ratios):.2f}–{max(ratios):.2f} |")
                print(stats_lines[-1], flush=True)
        del q, k, v
        torch.cuda.empty_cache()
    # Peak memory of one layer's forward + statistics at 128k tokens (H = 16, d = 64, P = 1024).
    mem_lines = []
    n, H, d = 131072, 16, 64
    q, k, v = (torch.randn(1, H, n, d, device=dev, dtype=torch.bfloat16) for _ in range(3))
    for kind, span in [("full", 0), ("window", 2048)]:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.time()
        res = torch.ops.spanscope.span_attention_stats(q, k, v, kind, span, False, 0.125, 2048, 4, 1024, [0, n // 2, n - 1])
        torch.cuda.synchronize()
        secs = time.time() - t0
        peak = torch.cuda.max_memory_allocated() - base
        kept = sum(t.numel() * t.element_size() for t in res[2:])
        mem_lines.append(f"| {kind}{span if span else ''} | {n} | {H} | {d} | {peak / 2**20:.0f} MiB | {kept / 2**20:.1f} MiB | {secs:.3f} s |")
        del res

    def fmt(x):
        return f"{x:6.1f}" if isinstance(x, float) else str(x)

    table = ["| d | mask | N | B | H | ours TFLOP/s | ms | sdpa-cudnn | sdpa-flash | flex | flex-autotune | ours/cudnn | ours/flex best |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        best_flex = max([r[k] for k in ("flex", "flex-autotune") if k in r], default=None)
        table.append("| " + " | ".join([str(r["d"]), r["kind"], str(r["n"]), str(r["B"]), str(r["H"]), fmt(r["ours"]),
                                        f"{r['ours_ms']:.3f}", fmt(r.get("sdpa-cudnn", "-")), fmt(r.get("sdpa-flash", "-")),
                                        fmt(r.get("flex", "-")), fmt(r.get("flex-autotune", "-")),
                                        f"{r['ours'] / r['sdpa-cudnn']:.2f}" if "sdpa-cudnn" in r else "-",
                                        f"{r['ours'] / best_flex:.2f}" if best_flex else "-"]) + " |")
    report = ["## Forward, bf16, B*N = 16k tokens, H*d = 2048 (TFLOP/s on attended pairs, 4*d per pair)", ""] + table
    report += ["", "## Statistics pass (B = 1), extra time over one forward", "",
               "| mask | N | H | d | P | forward ms | stats extra ms | extra / forward | rounds' range |", "|---|---|---|---|---|---|---|---|---|"] + stats_lines
    report += ["", "## One layer forward + statistics at 128k tokens (P = 1024, 3 exact rows)", "",
               "| mask | N | H | d | peak extra memory | statistics kept | wall (first call) |", "|---|---|---|---|---|---|---|"] + mem_lines
    emit_report(args, lines, report)


def bench_backward(args, log, lines, flex_default, dev):
    """Backward alone (dq, dk, dv from dout), FLOPs = 2.5 x the forward's on the attended pairs.
    Peers: SDPA (cuDNN, flash) for full causal, compiled FlexAttention for window / block; theirs is
    timed as torch.autograd.grad of a forward output kept alive (retain_graph)."""
    bwd = torch.ops.spanscope.span_attention_backward
    fwd = torch.ops.spanscope.span_attention
    table = ["| d | mask | N | B | H | ours TFLOP/s | ms | sdpa-cudnn | sdpa-flash | flex | ours/best peer |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    ns = [8192] if args.quick else [2048, 8192, 32768]
    for d in [64, 128]:
        H = HD // d
        for kind, span in [("full", 0), ("window", 512), ("window", 2048), ("block", 1024)]:
            for n in ns:
                B = max(1, TOKENS // n)
                q, k, v, do = (torch.randn(B, H, n, d, device=dev, dtype=torch.bfloat16) for _ in range(4))
                scale = 1.0 / math.sqrt(d)
                flops = 2.5 * 4.0 * d * attended_pairs(kind, n, span) * B * H
                out, lse = fwd(q, k, v, kind, span, False, scale)
                t_ours = median_ms(lambda: bwd(q, k, v, out, lse, do, kind, span, False, scale))
                peers = {}
                qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
                if kind == "full":
                    for name, backend in [("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION), ("sdpa-flash", SDPBackend.FLASH_ATTENTION)]:
                        try:
                            with sdpa_kernel([backend]):
                                o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=True, scale=scale)
                                peers[name] = median_ms(lambda: torch.autograd.grad(o, (qg, kg, vg), do, retain_graph=True))
                        except Exception as e:  # noqa: BLE001 - report and go on
                            log(f"  {name} backward failed at d={d} n={n}: {type(e).__name__}: {str(e)[:120]}")
                else:
                    bm = create_block_mask(mask_mod_for(kind, span), None, None, n, n, device="cuda")
                    o = flex_default(qg, kg, vg, block_mask=bm, scale=scale)
                    ref = torch.autograd.grad(o, (qg, kg, vg), do, retain_graph=True)
                    mine = bwd(q, k, v, out, lse, do, kind, span, False, scale)
                    diff = max((a.float() - b.float()).abs().max().item() for a, b in zip(mine, ref))
                    if diff > 0.1:
                        log(f"  WARNING: ours vs flex backward max diff {diff:.3g} at {kind}{span} d={d} n={n}")
                    peers["flex"] = median_ms(lambda: torch.autograd.grad(o, (qg, kg, vg), do, retain_graph=True))
                tf = lambda ms: flops / ms / 1e9  # noqa: E731
                best = min(peers.values()) if peers else None
                cells = [f"{tf(peers[k]):6.1f}" if k in peers else "-" for k in ("sdpa-cudnn", "sdpa-flash", "flex")]
                ratio = f"{best / t_ours:.2f}" if best else "-"
                table.append(f"| {d} | {kind}{span if span else ''} | {n} | {B} | {H} | {tf(t_ours):6.1f} | {t_ours:.3f} | "
                             + " | ".join(cells) + f" | {ratio} |")
                print(table[-1], flush=True)
                del q, k, v, do, qg, kg, vg, out, lse
                torch.cuda.empty_cache()
    emit_report(args, lines, ["## Backward, bf16, B*N = 16k tokens, H*d = 2048 (TFLOP/s, 2.5 x 4*d per attended pair)", ""] + table)


def sparsek_block_mask(plan_offsets, plan_keys, B, H, n, w, mask_mod):
    """FlexAttention's BlockMask (128 x 128 blocks) of exactly the key blocks our kernel visits: the
    blocks holding a key of each query block's list, plus the window's blocks; the window blocks that
    every row of the query block attends whole are marked full (no mask_mod there)."""
    from torch.nn.attention.flex_attention import BlockMask
    bs = 128
    nb = (n + bs - 1) // bs
    dev = plan_keys.device
    counts = (plan_offsets[1:] - plan_offsets[:-1]).long()                     # (B*H*nb)
    seg = torch.repeat_interleave(torch.arange(B * H * nb, device=dev), counts)  # list entry -> (bh, q block)
    need = torch.zeros(B * H * nb, nb, dtype=torch.bool, device=dev)
    need[seg, plan_keys.long() // bs] = True
    qb = torch.arange(nb, device=dev).view(nb, 1)
    kb = torch.arange(nb, device=dev).view(1, nb)
    window = (kb <= qb) & ((kb + 1) * bs - 1 >= qb * bs - w + 1)
    full = (kb < qb) & (qb * bs + bs - 1 - kb * bs < w)
    need = need.view(B, H, nb, nb) | window
    partial = need & ~full
    full = full.expand(B, H, nb, nb)

    def ordered(m):
        num = m.sum(-1).to(torch.int32)
        idx = torch.argsort(m.to(torch.int8), dim=-1, descending=True, stable=True).to(torch.int32)
        return num.contiguous(), idx.contiguous()

    kv_num, kv_idx = ordered(partial)
    full_num, full_idx = ordered(full)
    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=bs, mask_mod=mask_mod, seq_lengths=(n, n))


def bench_sparsek(args, log, lines, flex_default, flex_autotune, dev):
    """SparseK attention forward (window w + selected keys gated by m = clip(u - tau, 0, 1)), bf16,
    B*N = 16k tokens (B = 1 beyond), H*d = 2048, k = 128, w = 384 (the k + w budget of a window-512
    layer). Key scores u ~ N(0, 4^2) per (b, h) (mostly hard selections, a short fractional tail).
    The selection is planned once on the GPU (sparsek_plan: tau per query and each 128-query block's
    key list, kernels/sparsek_plan.cu; timed apart, the peers get it for free); then timed:
      ours         the fused kernel alone (sparsek_attention_planned)
      flex         FlexAttention compiled with the same mask (mask_mod: window or u_j > tau_i) and
                   score_mod adding log m, on a BlockMask of the key blocks our kernel visits
      sdpa-gather  SDPA (default backend choice) on each query block's gathered keys (its list plus
                   its window, padded) with the additive mask log m / -inf; the gather is done once
                   beforehand and not timed (favours the peer)
    FLOPs: 4*d per attended pair (window pairs + pairs with m > 0).
    Backward (dq, dk, dv and du from dout; sparsek_attention_backward: the gathered keys' kernel plus
    the span backward over the window), 2.5 x the forward's FLOPs, against FlexAttention's backward of
    the same compiled forward (dq, dk, dv only: it treats u and tau as constants, so it does less)."""
    topk, w, spread = 128.0, 384, 4.0
    ours_planned = torch.ops.spanscope.sparsek_attention_planned
    ours_bwd = torch.ops.spanscope.sparsek_attention_backward
    table = ["| d | N | B | H | selected keys / query | plan ms | ours TFLOP/s | ms | flex | flex-autotune | sdpa-gather | "
             "ours/flex best | ours/sdpa-gather |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    btable = ["| d | N | B | H | ours bwd TFLOP/s | ms | bwd / fwd | flex bwd TFLOP/s | ms | ours/flex |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    ns = [16384] if args.quick else [8192, 16384, 32768, 65536]
    autotune_spent = 0.0
    for d in [64, 128]:
        H = HD // d
        for n in ns:
            B = max(1, TOKENS // n)
            q, k, v = (torch.randn(B, H, n, d, device=dev, dtype=torch.bfloat16) for _ in range(3))
            u = (torch.randn(B, H, n, device=dev) * spread).contiguous()
            scale = 1.0 / math.sqrt(d)
            tau, offs, keys, pairs = torch.ops.spanscope.sparsek_plan(u, topk, w)
            plan_ms = median_ms(lambda: torch.ops.spanscope.sparsek_plan(u, topk, w))
            selected, window_pairs = (int(x) for x in pairs.tolist())
            flops = 4.0 * d * (selected + window_pairs)
            t_ours = median_ms(lambda: ours_planned(q, k, v, u, tau, offs, keys, w, scale))
            out, lse = ours_planned(q, k, v, u, tau, offs, keys, w, scale)
            do = torch.randn_like(q)
            t_bwd = median_ms(lambda: ours_bwd(q, k, v, u, tau, offs, keys, out, lse, do, topk, w, scale))
            mine = ours_bwd(q, k, v, u, tau, offs, keys, out, lse, do, topk, w, scale)
            t_flex_bwd = None
            peers = {}

            def sk_mask(b, h, q_idx, kv_idx):
                sel = (kv_idx <= q_idx - w) & (u[b, h, kv_idx] > tau[b, h, q_idx])
                return sel | ((kv_idx <= q_idx) & (q_idx - kv_idx < w))

            def sk_score(score, b, h, q_idx, kv_idx):
                m = torch.clamp(u[b, h, kv_idx] - tau[b, h, q_idx], min=1e-30, max=1.0)
                return torch.where(kv_idx <= q_idx - w, score + torch.log(m), score)

            try:
                bm = sparsek_block_mask(offs, keys, B, H, n, w, sk_mask)
                ref = flex_default(q, k, v, score_mod=sk_score, block_mask=bm, scale=scale)
                diff = (out.float() - ref.float()).abs().max().item()
                if diff > 0.05:
                    log(f"  WARNING: ours vs flex max diff {diff:.3g} at d={d} n={n}")
                peers["flex"] = median_ms(lambda: flex_default(q, k, v, score_mod=sk_score, block_mask=bm, scale=scale))
                qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
                o = flex_default(qg, kg, vg, score_mod=sk_score, block_mask=bm, scale=scale)
                theirs = torch.autograd.grad(o, (qg, kg, vg), do, retain_graph=True)
                gdiff = max((a.float() - b.float()).abs().max().item() / max(b.float().abs().max().item(), 1e-30)
                            for a, b in zip(mine[:3], theirs))
                if gdiff > 0.05:
                    log(f"  WARNING: ours vs flex backward max relative diff {gdiff:.3g} at d={d} n={n}")
                t_flex_bwd = median_ms(lambda: torch.autograd.grad(o, (qg, kg, vg), do, retain_graph=True))
                del qg, kg, vg, o, theirs
                if autotune_spent < args.autotune_budget and n in (16384, 65536):
                    t1 = time.time()
                    flex_autotune(q, k, v, score_mod=sk_score, block_mask=bm, scale=scale)
                    torch.cuda.synchronize()
                    autotune_spent += time.time() - t1
                    peers["flex-autotune"] = median_ms(lambda: flex_autotune(q, k, v, score_mod=sk_score, block_mask=bm, scale=scale))
                del bm, ref
            except Exception as e:  # noqa: BLE001 - report and go on
                log(f"  flex failed at d={d} n={n}: {type(e).__name__}: {str(e)[:200]}")
            try:
                peers["sdpa-gather"], diff = sdpa_gathered(q, k, v, u, tau, offs, keys, w, scale, out)
                if diff > 0.05:
                    log(f"  WARNING: ours vs sdpa-gather max diff {diff:.3g} at d={d} n={n}")
            except Exception as e:  # noqa: BLE001 - report and go on
                log(f"  sdpa-gather failed at d={d} n={n}: {type(e).__name__}: {str(e)[:200]}")
            tf = lambda ms: flops / ms / 1e9  # noqa: E731
            flex_best = min([peers[x] for x in ("flex", "flex-autotune") if x in peers], default=None)
            cells = [f"{tf(peers[x]):6.1f}" if x in peers else "-" for x in ("flex", "flex-autotune", "sdpa-gather")]
            ratio_flex = f"{flex_best / t_ours:.2f}" if flex_best else "-"
            ratio_sdpa = f"{peers['sdpa-gather'] / t_ours:.2f}" if "sdpa-gather" in peers else "-"
            table.append(f"| {d} | {n} | {B} | {H} | {selected / (B * H * n):.1f} | {plan_ms:.2f} | {tf(t_ours):6.1f} | {t_ours:.3f} | "
                         + " | ".join(cells + [ratio_flex, ratio_sdpa]) + " |")
            print(table[-1], flush=True)
            btf = lambda ms: 2.5 * flops / ms / 1e9  # noqa: E731
            fcells = [f"{btf(t_flex_bwd):6.1f}", f"{t_flex_bwd:.3f}", f"{t_flex_bwd / t_bwd:.2f}"] if t_flex_bwd else ["-"] * 3
            btable.append(f"| {d} | {n} | {B} | {H} | {btf(t_bwd):6.1f} | {t_bwd:.3f} | {t_bwd / t_ours:.2f} | " + " | ".join(fcells) + " |")
            print(btable[-1], flush=True)
            del q, k, v, u, tau, offs, keys, out, lse, do, mine
            torch.cuda.empty_cache()
    emit_report(args, lines, ["## SparseK forward, bf16, k = 128, w = 384, u ~ N(0, 16), B*N = 16k tokens (B = 1 beyond), H*d = 2048",
                              ""] + table + ["", "## SparseK backward (dq, dk, dv, du; flex: dq, dk, dv), same inputs, "
                                                 "TFLOP/s at 2.5 x the forward's FLOPs", ""] + btable)


def sdpa_gathered(q, k, v, u, tau, offs, keys, w, scale, ours_out):
    """SDPA on gathered keys: each 128-query block attends its list plus its window range, padded to
    the longest; the additive mask carries log m, 0 on the window and -inf elsewhere. Returns (median
    ms of the SDPA call, max |difference| to our output)."""
    B, H, n, d = q.shape
    bs, dev = 128, q.device
    nb = (n + bs - 1) // bs
    counts = (offs[1:] - offs[:-1]).long().view(B * H, nb)
    q0 = torch.arange(nb, device=dev) * bs
    wlo = torch.clamp(q0 - w + 1, min=0)
    wlen = torch.clamp(q0 + bs, max=n) - wlo                            # window range length per block
    kmax = int((counts + wlen.view(1, nb)).max())
    # Gathered positions (B*H, nb, kmax): the block's list, then its window range, then padding (-1).
    slot = torch.arange(kmax, device=dev).view(1, 1, kmax)
    starts = offs[:-1].long().view(B * H, nb, 1)
    in_list = slot < counts.unsqueeze(-1)
    list_pos = keys.long()[torch.clamp(starts + slot, max=max(keys.numel() - 1, 0))] if keys.numel() else torch.zeros_like(slot.expand(B * H, nb, kmax))
    win_pos = wlo.view(1, nb, 1) + slot - counts.unsqueeze(-1)
    in_win = (~in_list) & (slot - counts.unsqueeze(-1) < wlen.view(1, nb, 1))
    pos = torch.where(in_list, list_pos, torch.where(in_win, win_pos, torch.full_like(win_pos, -1)))
    valid = pos >= 0
    posc = torch.clamp(pos, min=0)
    bh = torch.arange(B * H, device=dev).view(B * H, 1, 1)
    kf, vf = k.reshape(B * H, n, d), v.reshape(B * H, n, d)
    kg, vg = kf[bh, posc], vf[bh, posc]                                  # (B*H, nb, kmax, d)
    rows = (q0.view(nb, 1) + torch.arange(bs, device=dev).view(1, bs))   # (nb, bs) query positions
    i = rows.view(1, nb, bs, 1)
    j = posc.view(B * H, nb, 1, kmax)
    uu = u.reshape(B * H, n)[bh, posc].view(B * H, nb, 1, kmax)
    tt = tau.reshape(B * H, n)[torch.arange(B * H, device=dev).view(B * H, 1, 1), torch.clamp(rows, max=n - 1).view(1, nb, bs)]
    m = torch.clamp(uu - tt.view(B * H, nb, bs, 1), max=1.0)
    win = (j <= i) & (i - j < w) & in_win.view(B * H, nb, 1, kmax)
    sel = (j <= i - w) & (m > 0) & in_list.view(B * H, nb, 1, kmax)
    bias = torch.where(win, torch.zeros_like(m), torch.where(sel, torch.log(torch.clamp(m, min=1e-30)), torch.full_like(m, -float("inf"))))
    bias = torch.where(valid.view(B * H, nb, 1, kmax), bias, torch.full_like(bias, -float("inf"))).to(q.dtype)
    del m, uu, win, sel
    qp = torch.nn.functional.pad(q.reshape(B * H, n, d), (0, 0, 0, nb * bs - n)).view(B * H * nb, 1, bs, d)
    kg, vg = kg.view(B * H * nb, 1, kmax, d), vg.view(B * H * nb, 1, kmax, d)
    bias = bias.view(B * H * nb, 1, bs, kmax)
    call = lambda: F.scaled_dot_product_attention(qp, kg, vg, attn_mask=bias, scale=scale)  # noqa: E731
    res = call().view(B * H, nb * bs, d)[:, :n].reshape(B, H, n, d)
    diff = (res.float() - ours_out.float()).abs().max().item()
    ms = median_ms(call)
    return ms, diff


if __name__ == "__main__":
    sys.exit(main())
