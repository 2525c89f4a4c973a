// Span attention forward on Hopper tensor cores (wgmma, sm_90a): the same contract and masks as
// span_attention_fwd.cu (full / window / block(+prev) causal, out + lse), FlashAttention-3's
// structure without its producer warp: every thread also issues the cp.async loads.
//
// One thread block = NWG warpgroups (128 threads each); warpgroup w owns 64 query rows
// [q0 + 64w, q0 + 64w + 64) of one (b, h), so a block covers BR = 64·NWG queries. The block walks
// the key tiles [firstKey(q0), min(q0 + BR, T)) in BC-key steps; K/V tiles stream in with cp.async
// one tile ahead (STAGES shared-memory stages) behind a single barrier per tile. Per warpgroup and
// tile: S = Q K^T by D/16 wgmma (Q and K from shared memory, SW128 layout — kernels/wgmma.cuh), the
// element mask only where the tile is not inside every row's interval, online softmax in base 2 on
// the accumulators (the mma.sync helpers of mma_tile.cuh: same fragment layout), then O += P V by
// BC/16 wgmma with P from registers and V as the transposed operand. A warpgroup whose rows see none
// of a tile skips it (wgmma is warpgroup-wide, and so is the test).
//
// OVERLAP (FlashAttention-3's intra-warpgroup pipelining): the P V product of tile t-1 is issued
// right after S of tile t, so the exponentials of tile t run on the SFU while the tensor cores do
// tile t-1's P V; the output rescale waits for it. V of tile t-1 must then outlive the load of tile
// t+1: three stages instead of two.
#include "kernels/span_attention.h"

#include "kernels/launch.cuh"
#include "kernels/wgmma.cuh"

namespace spanscope::cuda {
namespace {

template <int D, int BC, int NWG, bool OVERLAP> struct Sm90Config {
    static constexpr int kBr = 64 * NWG;
    static constexpr int kThreads = 128 * NWG;
    static constexpr int kStages = OVERLAP ? 3 : 2;
    static constexpr size_t kSmem = static_cast<size_t>(kBr + 2 * kStages * BC) * D * 2 + 1024;  // + alignment slack
};

template <int D, int BC, int NWG, bool OVERLAP, typename T>
__global__ void __launch_bounds__(128 * NWG, 1) span_attention_fwd_sm90_kernel(const SpanAttentionParams p) {
#if defined(SPANSCOPE_WGMMA_DEVICE)
    using Cfg = Sm90Config<D, BC, NWG, OVERLAP>;
    constexpr int BR = Cfg::kBr, NT = Cfg::kThreads, STAGES = Cfg::kStages;
    extern __shared__ unsigned char smemRaw[];
    // SW128 panels must start on 1024-byte boundaries (shared-memory addresses).
    T* sQ = reinterpret_cast<T*>(smemRaw + ((1024 - (smemAddr(smemRaw) & 1023)) & 1023));  // (BR, D), then the output
    T* sK = sQ + BR * D;           // STAGES x (BC, D)
    T* sV = sK + STAGES * BC * D;  // STAGES x (BC, D)

    const int T_ = p.T;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BR;
    const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H;
    const T* qg = static_cast<const T*>(p.q) + b * p.qs.b + h * p.qs.h;
    const T* kg = static_cast<const T*>(p.k) + b * p.ks.b + h * p.ks.h;
    const T* vg = static_cast<const T*>(p.v) + b * p.vs.b + h * p.vs.h;
    T* og = static_cast<T*>(p.out) + b * p.os.b + h * p.os.h;
    const SpanMask mask = p.mask;

    const int qLast = min(q0 + BR, T_) - 1;
    const int kBegin = static_cast<int>(mask.firstKey(q0)) / BC * BC;
    const int nTiles = (qLast + 1 - kBegin + BC - 1) / BC;

    // wg through a shuffle: ptxas then knows it is warp-uniform, and so is every branch on it (with
    // a divergent-looking branch it serialises the wgmma instructions).
    const int tid = threadIdx.x, wg = __shfl_sync(0xffffffffu, tid / 128, 0), warp = (tid % 128) / 32, lane = tid % 32;
    const int g = lane / 4, c = lane % 4;
    const int gRow0 = q0 + 64 * wg;                   // this warpgroup's first query
    const int gRowLast = min(gRow0 + 64, T_) - 1;     // < gRow0 when it has no real rows
    const int gFirstLo = gRowLast >= gRow0 ? static_cast<int>(mask.firstKey(gRow0)) : 0;
    const int gFirstHi = gRowLast >= gRow0 ? static_cast<int>(mask.firstKey(gRowLast)) : 0;

    loadTileSw128<BR, D, NT>(sQ, qg, p.qs.t, q0, T_, tid);
    loadTileSw128<BC, D, NT>(sK, kg, p.ks.t, kBegin, T_, tid);
    loadTileSw128<BC, D, NT>(sV, vg, p.vs.t, kBegin, T_, tid);
    cpAsyncCommit();

    int rowI[2], rowFirst[2];
    float o[1][D / 8][4], m[1][2], l[1][2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        rowI[r] = gRow0 + 16 * warp + g + 8 * r;
        rowFirst[r] = static_cast<int>(mask.firstKey(rowI[r]));
        m[0][r] = -INFINITY;
        l[0][r] = 0.f;
    }
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) o[0][dt][0] = o[0][dt][1] = o[0][dt][2] = o[0][dt][3] = 0.f;
    const float sl2 = p.scale * 1.4426950408889634f;

    // Descriptors: Q rows of this warpgroup (K-major A), K and V tiles (K-major B; MN-major B).
    const T* sQw = sQ + 64 * wg * 64;
    uint32_t pf[BC / 16][4];  // P of the pending tile (OVERLAP) as A fragments
    int pendingStage = -1;
    auto issuePV = [&](int stage) {
        const T* vt = sV + stage * BC * D;
#pragma unroll
        for (int kk = 0; kk < BC / 16; ++kk)
            wgmmaRS<D, T>(o[0], pf[kk], sw128Desc(vt + kk * 16 * 64, BC * 128), 1);
    };

    auto issueS = [&](float (&s)[1][BC / 8][4], const T* kt) {
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)  // 64-column panel kk / 4, then 16 elements (32 bytes) per k16 step
            wgmmaSS<BC, T>(s[0], sw128Desc(sQw + (kk / 4) * BR * 64 + (kk % 4) * 16, 0),
                           sw128Desc(kt + (kk / 4) * BC * 64 + (kk % 4) * 16, 0), kk > 0);
    };
    // The element mask where the tile is not inside every row's interval, then the online softmax.
    auto maskSoftmax = [&](float (&s)[1][BC / 8][4], int k0, float (&corr)[1][2]) {
        if (!(k0 + BC - 1 <= gRow0 && gFirstHi <= k0)) {
#pragma unroll
            for (int nt = 0; nt < BC / 8; ++nt)
#pragma unroll
                for (int x = 0; x < 4; ++x) {
                    const int j = k0 + nt * 8 + 2 * c + (x & 1);
                    const int r = x >> 1;
                    if (j > rowI[r] || j < rowFirst[r]) s[0][nt][x] = -INFINITY;
                }
        }
        softmaxTile<BC, 1>(s, m, l, sl2, corr);
    };

    for (int it = 0; it < nTiles; ++it) {
        const int k0 = kBegin + it * BC;
        const int stage = it % STAGES;
        cpAsyncWait<0>();
        fenceProxyAsync();
        __syncthreads();
        if (it + 1 < nTiles) {
            const int ns = (it + 1) % STAGES;
            loadTileSw128<BC, D, NT>(sK + ns * BC * D, kg, p.ks.t, k0 + BC, T_, tid);
            loadTileSw128<BC, D, NT>(sV + ns * BC * D, vg, p.vs.t, k0 + BC, T_, tid);
        }
        cpAsyncCommit();

        const bool live = gRowLast >= gRow0 && k0 <= gRowLast && k0 + BC - 1 >= gFirstLo;
        if (live) {
            const T* kt = sK + stage * BC * D;
            float s[1][BC / 8][4], corr[1][2];
            // Each branch issues and waits for all its wgmma: a group still in flight where
            // data-dependent paths join makes ptxas serialise every wgmma of the kernel.
            if (OVERLAP && pendingStage >= 0) {
                wgmmaFence();
                issueS(s, kt);
                wgmmaCommit();
                issuePV(pendingStage);
                wgmmaCommit();
                wgmmaWait<1>();
                fenceAccumulators(s[0]);
                maskSoftmax(s, k0, corr);
                wgmmaWait<0>();
                fenceAccumulators(o[0]);
            } else {
                wgmmaFence();
                issueS(s, kt);
                wgmmaCommit();
                wgmmaWait<0>();
                fenceAccumulators(s[0]);
                maskSoftmax(s, k0, corr);
            }
            rescaleRows<D, 1>(o, corr);
#pragma unroll
            for (int kk = 0; kk < BC / 16; ++kk) packP<BC, 1, T>(pf[kk], s, 0, kk);
            if (OVERLAP) {
                pendingStage = stage;
            } else {
                wgmmaFence();
                issuePV(stage);
                wgmmaCommit();
                wgmmaWait<0>();
                fenceAccumulators(o[0]);
            }
        } else if (OVERLAP && pendingStage >= 0) {
            wgmmaFence();
            issuePV(pendingStage);
            wgmmaCommit();
            wgmmaWait<0>();
            fenceAccumulators(o[0]);
            pendingStage = -1;
        }
    }
    if (OVERLAP && pendingStage >= 0) {
        wgmmaFence();
        issuePV(pendingStage);
        wgmmaCommit();
        wgmmaWait<0>();
        fenceAccumulators(o[0]);
    }

    // Epilogue: normalise, stage this warp's 16 rows in its own rows of sQ (SW128 positions, so no
    // other warp's Q is touched), store 16-byte chunks; lse in natural log.
    float* lseg = p.lse + static_cast<int64_t>(bh) * T_;
    const int rowLocal0 = 64 * wg + 16 * warp;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const float lTot = quadSum(l[0][r]);
        const float inv = lTot > 0.f ? 1.f / lTot : 0.f;
        const int rowLocal = rowLocal0 + g + 8 * r;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt)
            *reinterpret_cast<uint32_t*>(sQ + sw128<BR>(rowLocal, dt * 8 + 2 * c)) =
                packPair<T>(o[0][dt][2 * r] * inv, o[0][dt][2 * r + 1] * inv);
        if (c == 0 && rowI[r] < T_) lseg[rowI[r]] = (m[0][r] + __log2f(lTot)) * 0.6931471805599453f;
    }
    __syncwarp();
#pragma unroll
    for (int idx = lane; idx < 16 * D / 8; idx += 32) {
        const int row = idx / (D / 8), ch = idx % (D / 8);
        const int gr = q0 + rowLocal0 + row;
        if (gr < T_)
            *reinterpret_cast<uint4*>(og + static_cast<int64_t>(gr) * p.os.t + ch * 8) =
                *reinterpret_cast<const uint4*>(sQ + sw128<BR>(rowLocal0 + row, ch * 8));
    }
#else
    __trap();
#endif
}

template <int D, int BC, int NWG, bool OVERLAP, typename T>
void launchSm90(const SpanAttentionParams& p, cudaStream_t stream) {
    using Cfg = Sm90Config<D, BC, NWG, OVERLAP>;
    launchKernel(span_attention_fwd_sm90_kernel<D, BC, NWG, OVERLAP, T>, dim3((p.T + Cfg::kBr - 1) / Cfg::kBr, p.B * p.H),
                 Cfg::kThreads, Cfg::kSmem, stream, p, "span attention forward (sm90)");
}

template <typename T> void launchSm90Variant(const SpanAttentionParams& p, int variant, cudaStream_t stream) {
    // variant 0: the measured default per head dim; 1..: alternatives for tuning (bench/tune_fwd.py).
    if (p.D == 64) {
        switch (variant) {
        case 1: return launchSm90<64, 128, 2, false, T>(p, stream);
        case 2: return launchSm90<64, 128, 3, true, T>(p, stream);
        default: return launchSm90<64, 128, 2, true, T>(p, stream);
        }
    }
    switch (variant) {
    case 1: return launchSm90<128, 128, 2, true, T>(p, stream);
    case 2: return launchSm90<128, 64, 2, true, T>(p, stream);
    default: return launchSm90<128, 128, 2, false, T>(p, stream);
    }
}

}  // namespace

void span_attention_fwd_sm90_launch(const SpanAttentionParams& p, int variant, cudaStream_t stream) {
    if (p.elem == ElemType::BF16) launchSm90Variant<__nv_bfloat16>(p, variant, stream);
    else launchSm90Variant<__half>(p, variant, stream);
}

}  // namespace spanscope::cuda
