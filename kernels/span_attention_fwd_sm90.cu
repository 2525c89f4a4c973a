// Span attention forward on Hopper tensor cores (wgmma + TMA, sm_90a): the same contract and masks
// as span_attention_fwd.cu (full / window / block(+prev) causal, out + lse), laid out as in
// FlashAttention-3 (warp specialisation, TMA, mbarrier pipelines). span_attention_fwd.cu picks it on
// compute capability 9.0 and falls back to its mma.sync kernel where TMA cannot map the tensors.
//
// One thread block = 1 + NCW warpgroups for BR = 64·NCW queries [q0, q0 + BR) of one (b, h) (NCW = 2
// by default). Warpgroup 0
// is the producer: one thread issues the TMA loads (Q once; then K and V tile by tile into STAGES
// shared-memory stages, SW128 layout — kernels/wgmma.cuh) that complete on "full" mbarriers, and the
// warpgroup gives most of its registers to the others (setmaxnreg). Warpgroups 1 .. NCW are the
// consumers, 64 query rows each. The block walks the key tiles [firstKey(q0), min(q0 + BR, T)) in
// BC-key steps, so the work follows the attended pairs. Per consumer and tile: wait for K, S = Q K^T
// by D/16 wgmma (Q and K from shared memory), release K ("empty" barrier, one arrival per consumer
// warp), the element mask only where the tile is not inside every row's interval, online softmax
// in base 2 on the accumulators (the mma.sync helpers of mma_tile.cuh: same fragment layout), wait
// for V, O += P V by BC/16 wgmma with P from registers and V as the transposed operand, release V.
// Loads run up to STAGES tiles ahead and the consumers drift freely (no block-wide barrier): one
// computes its softmax while the other's wgmma run. A consumer whose rows see none of a tile skips
// its arithmetic but still waits for the tile before releasing it.
//
// OVERLAP (FlashAttention-3's intra-warpgroup pipelining, a tuning variant): the P V product of
// tile t-1 is issued right after S of tile t, so tile t's exponentials overlap tile t-1's P V; the
// output rescale waits for it. On the H100 it lost to the plain order (bench/RESULTS.md).
// TURNS (FlashAttention-3's ping-pong between warpgroups, variants 5 and 6): at d = 128 within the
// run-to-run spread of the plain order on the H100 (full attention +4 % in one run, -3 % in the next;
// bench/RESULTS.md), at d = 64 up to 5 % slower: not the default.
#include "kernels/span_attention.h"

#include <cuda.h>

#include "kernels/launch.cuh"
#include "kernels/tma_map.h"
#include "kernels/wgmma.cuh"

namespace spanscope::cuda {
namespace {

struct Sm90TmaArgs {
    SpanAttentionParams p;
    CUtensorMap q, k, v;  // (B, H, T, D) as 4-d maps, boxes of 64 columns x rows, 128-byte swizzle
};

template <int D, int BC, int STAGES, bool OVERLAP, int NCW> struct Sm90WsConfig {
    static constexpr int kBr = 64 * NCW;  // NCW consumer warpgroups
    static constexpr int kThreads = 128 * (NCW + 1);
    // Registers per thread after setmaxnreg (kernels/wgmma.cuh): 40 / 232 with two consumer
    // warpgroups, 24 / 160 with three.
    static constexpr int kProducerRegs = WsRegisterSplit<NCW, 1>::kProducer;
    static constexpr int kConsumerRegs = WsRegisterSplit<NCW, 1>::kConsumer;
    static constexpr size_t kTiles = static_cast<size_t>(kBr + 2 * STAGES * BC) * D * 2;
    static constexpr size_t kSmem = kTiles + (1 + 4 * STAGES) * 8 + 1024;  // + barriers + alignment slack
};

template <int D, int BC, int STAGES, bool OVERLAP, int NCW, bool TURNS, typename T>
__global__ void __launch_bounds__(128 * (NCW + 1), 1) span_attention_fwd_ws_kernel(const __grid_constant__ Sm90TmaArgs a) {
#if defined(SPANSCOPE_WGMMA_DEVICE)
    using Cfg = Sm90WsConfig<D, BC, STAGES, OVERLAP, NCW>;
    constexpr int BR = Cfg::kBr;
    constexpr uint32_t kTileBytes = BC * D * 2;
    const SpanAttentionParams& p = a.p;
    extern __shared__ unsigned char smemRaw[];
    unsigned char* base = smemRaw + ((1024 - (smemAddr(smemRaw) & 1023)) & 1023);
    T* sQ = reinterpret_cast<T*>(base);  // (BR, D), then the output
    T* sK = sQ + BR * D;                 // STAGES x (BC, D)
    T* sV = sK + STAGES * BC * D;        // STAGES x (BC, D)
    uint64_t* fullQ = reinterpret_cast<uint64_t*>(base + Cfg::kTiles);
    uint64_t* fullK = fullQ + 1;
    uint64_t* fullV = fullK + STAGES;
    uint64_t* emptyK = fullV + STAGES;
    uint64_t* emptyV = emptyK + STAGES;

    const int T_ = p.T;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BR;
    const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H;
    const SpanMask mask = p.mask;
    const int qLast = min(q0 + BR, T_) - 1;
    const int kBegin = static_cast<int>(mask.firstKey(q0)) / BC * BC;
    const int nTiles = (qLast + 1 - kBegin + BC - 1) / BC;
    const int tid = threadIdx.x, wgAll = __shfl_sync(0xffffffffu, tid / 128, 0);

    if (tid == 0) {
        mbarInit(fullQ, 1);
        for (int st = 0; st < STAGES; ++st) {
            mbarInit(fullK + st, 1);
            mbarInit(fullV + st, 1);
            mbarInit(emptyK + st, 4 * NCW);  // one arrival per consumer warp
            mbarInit(emptyV + st, 4 * NCW);
        }
        mbarInitFence();
    }
    __syncthreads();

    if (wgAll == 0) {  // producer
        setMaxRegsDec<Cfg::kProducerRegs>();
        if (tid == 0) {
            mbarArriveExpectTx(fullQ, BR * D * 2);
            tmaLoadTile<D, BR>(sQ, &a.q, q0, h, b, fullQ);
            for (int it = 0; it < nTiles; ++it) {
                const int st = it % STAGES, k0 = kBegin + it * BC;
                const uint32_t prevPhase = ((it / STAGES) - 1) & 1;
                if (it >= STAGES) mbarWaitThread(emptyK + st, prevPhase);
                mbarArriveExpectTx(fullK + st, kTileBytes);
                tmaLoadTile<D, BC>(sK + st * BC * D, &a.k, k0, h, b, fullK + st);
                if (it >= STAGES) mbarWaitThread(emptyV + st, prevPhase);
                mbarArriveExpectTx(fullV + st, kTileBytes);
                tmaLoadTile<D, BC>(sV + st * BC * D, &a.v, k0, h, b, fullV + st);
            }
        }
        return;
    }
    setMaxRegsInc<Cfg::kConsumerRegs>();

    const int wg = wgAll - 1, warp = (tid % 128) / 32, lane = tid % 32;
    const int g = lane / 4, c = lane % 4;
    const int gRow0 = q0 + 64 * wg;
    const int gRowLast = min(gRow0 + 64, T_) - 1;
    const int gFirstLo = gRowLast >= gRow0 ? static_cast<int>(mask.firstKey(gRow0)) : 0;
    const int gFirstHi = gRowLast >= gRow0 ? static_cast<int>(mask.firstKey(gRowLast)) : 0;
    T* og = static_cast<T*>(p.out) + b * p.os.b + h * p.os.h;

    int rowI[1][2], rowFirst[1][2];
    float o[1][D / 8][4], m[1][2], l[1][2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        rowI[0][r] = gRow0 + 16 * warp + g + 8 * r;
        rowFirst[0][r] = static_cast<int>(mask.firstKey(rowI[0][r]));
        m[0][r] = -INFINITY;
        l[0][r] = 0.f;
    }
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) o[0][dt][0] = o[0][dt][1] = o[0][dt][2] = o[0][dt][3] = 0.f;
    const float sl2 = p.scale * 1.4426950408889634f;
    const T* sQw = sQ + 64 * wg * 64;
    uint32_t pf[BC / 16][4];
    int pendingStage = -1;
    uint32_t pendingPhase = 0;

    // A warp's wgmma have finished reading a stage once its wait returned: lane 0 releases it.
    auto release = [&](uint64_t* bar) {
        if (lane == 0) mbarArrive(bar);
    };
    auto issueS = [&](float (&s)[1][BC / 8][4], const T* kt) { wgmmaScores<D, BC, BR, T>(s[0], sQw, kt); };
    auto issuePV = [&](int stage) {
        const T* vt = sV + stage * BC * D;
#pragma unroll
        for (int kk = 0; kk < BC / 16; ++kk) wgmmaRS<D, T>(o[0], pf[kk], sw128Desc(vt + kk * 16 * 64, BC * 128), 1);
    };
    auto maskSoftmax = [&](float (&s)[1][BC / 8][4], int k0, float (&corr)[1][2]) {
        if (!(k0 + BC - 1 <= gRow0 && gFirstHi <= k0)) maskOutsideRows<BC, 1>(s, k0, rowI, rowFirst, c);
        softmaxTile<BC, 1>(s, m, l, sl2, corr);
    };
    // P V of the pending tile on its own (a warpgroup leaving its key range, or after the loop).
    auto flushPV = [&]() {
        mbarWait(fullV + pendingStage, pendingPhase);
        wgmmaFence();
        issuePV(pendingStage);
        wgmmaCommit();
        wgmmaWait<0>();
        fenceAccumulators(o[0]);
        release(emptyV + pendingStage);
        pendingStage = -1;
    };

    // TURNS (FlashAttention-3's ping-pong between warpgroups, a tuning variant): the warpgroups
    // issue their wgmma of each tile in turn (named barrier 2 + wg, synced by warpgroup wg and
    // arrived at by the one before it after its issue), so one warpgroup's softmax runs while the
    // next one's products occupy the tensor cores. Every warpgroup takes its turn on every tile,
    // skipped ones included; the first gets its first turn from the last one up front, the last
    // passes none after the last tile.
    auto awaitTurn = [&] {
        if constexpr (TURNS) namedBarrierSync(2 + wg, 256);
    };
    auto passTurn = [&](int it) {
        if constexpr (TURNS)
            if (wg + 1 < NCW || it + 1 < nTiles) namedBarrierArrive(2 + (wg + 1) % NCW, 256);
    };
    if constexpr (TURNS)
        if (wg == NCW - 1) namedBarrierArrive(2, 256);

    mbarWait(fullQ, 0);
    for (int it = 0; it < nTiles; ++it) {
        const int k0 = kBegin + it * BC;
        const int stage = it % STAGES;
        const uint32_t phase = (it / STAGES) & 1;
        const bool live = gRowLast >= gRow0 && k0 <= gRowLast && k0 + BC - 1 >= gFirstLo;
        if (live) {
            const T* kt = sK + stage * BC * D;
            float s[1][BC / 8][4], corr[1][2];
            mbarWait(fullK + stage, phase);
            // Each branch issues and waits for all its wgmma: a group still in flight where
            // data-dependent paths join makes ptxas serialise every wgmma of the kernel.
            if (OVERLAP && pendingStage >= 0) {
                mbarWait(fullV + pendingStage, pendingPhase);
                awaitTurn();
                wgmmaFence();
                issueS(s, kt);
                wgmmaCommit();
                issuePV(pendingStage);
                wgmmaCommit();
                passTurn(it);
                wgmmaWait<1>();
                fenceAccumulators(s[0]);
                release(emptyK + stage);
                maskSoftmax(s, k0, corr);
                wgmmaWait<0>();
                fenceAccumulators(o[0]);
                release(emptyV + pendingStage);
            } else {
                awaitTurn();
                wgmmaFence();
                issueS(s, kt);
                wgmmaCommit();
                passTurn(it);
                wgmmaWait<0>();
                fenceAccumulators(s[0]);
                release(emptyK + stage);
                maskSoftmax(s, k0, corr);
            }
            rescaleRows<D, 1>(o, corr);
#pragma unroll
            for (int kk = 0; kk < BC / 16; ++kk) packP<BC, 1, T>(pf[kk], s, 0, kk);
            pendingStage = stage;
            pendingPhase = phase;
            if (!OVERLAP) flushPV();
        } else {
            if (OVERLAP && pendingStage >= 0) flushPV();
            // Released without being read, but only once loaded: a warpgroup outside its key range
            // must not run ahead, or its arrivals would count towards a later phase of the empty
            // barrier (completing it while the other warpgroup still reads the stage).
            mbarWait(fullK + stage, phase);
            release(emptyK + stage);
            mbarWait(fullV + stage, phase);
            release(emptyV + stage);
            awaitTurn();
            passTurn(it);
        }
    }
    if (OVERLAP && pendingStage >= 0) flushPV();

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
        if (c == 0 && rowI[0][r] < T_) lseg[rowI[0][r]] = (m[0][r] + __log2f(lTot)) * 0.6931471805599453f;
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

template <int D, int BC, int STAGES, bool OVERLAP, int NCW, typename T, bool TURNS = false>
bool launchSm90Ws(const SpanAttentionParams& p, cudaStream_t stream) {
    using Cfg = Sm90WsConfig<D, BC, STAGES, OVERLAP, NCW>;
    Sm90TmaArgs args;
    args.p = p;
    if (!encodeTmaMap4d(&args.q, p.q, p.qs, p.B, p.H, p.T, p.D, p.elem, Cfg::kBr) ||
        !encodeTmaMap4d(&args.k, p.k, p.ks, p.B, p.H, p.T, p.D, p.elem, BC) ||
        !encodeTmaMap4d(&args.v, p.v, p.vs, p.B, p.H, p.T, p.D, p.elem, BC))
        return false;
    launchKernel(span_attention_fwd_ws_kernel<D, BC, STAGES, OVERLAP, NCW, TURNS, T>, dim3((p.T + Cfg::kBr - 1) / Cfg::kBr, p.B * p.H),
                 Cfg::kThreads, Cfg::kSmem, stream, args, "span attention forward (sm90, TMA)");
    return true;
}

template <typename T> bool launchSm90Variant(const SpanAttentionParams& p, int variant, cudaStream_t stream) {
    // variant 0: the measured default; others for tuning (bench/tune_fwd.py --variants).
    if (p.D == 64) {
        switch (variant) {
        case 1: return launchSm90Ws<64, 128, 2, true, 2, T>(p, stream);
        case 2: return launchSm90Ws<64, 192, 2, false, 2, T>(p, stream);
        case 3: return launchSm90Ws<64, 128, 2, false, 3, T>(p, stream);
        case 4: return launchSm90Ws<64, 128, 2, false, 2, T>(p, stream);
        case 5: return launchSm90Ws<64, 128, 3, false, 3, T, true>(p, stream);
        case 6: return launchSm90Ws<64, 128, 2, true, 2, T, true>(p, stream);
        // H100, 2026-11-24 (N = 16k): three consumer warpgroups and three stages, 1.06-1.15x two
        // warpgroups with two stages (full 439 vs 407 TFLOP/s, window 2048 387 vs 335).
        default: return launchSm90Ws<64, 128, 3, false, 3, T>(p, stream);
        }
    }
    switch (variant) {
    case 1: return launchSm90Ws<128, 128, 2, true, 2, T>(p, stream);
    case 2: return launchSm90Ws<128, 192, 2, false, 2, T>(p, stream);
    case 3: return launchSm90Ws<128, 64, 2, false, 3, T>(p, stream);
    case 4: return launchSm90Ws<128, 128, 3, false, 2, T>(p, stream);
    case 5: return launchSm90Ws<128, 128, 2, false, 2, T, true>(p, stream);
    case 6: return launchSm90Ws<128, 128, 2, true, 2, T, true>(p, stream);
    default: return launchSm90Ws<128, 128, 2, false, 2, T>(p, stream);
    }
}

}  // namespace

// See kernels/tma_map.h.
bool encodeTmaMap4d(CUtensorMap* map, const void* ptr, const Strides& s, int B, int H, int T, int D, ElemType elem, int rows) {
    using Encode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                                const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
    static Encode encode = []() -> Encode {
        void* fn = nullptr;
        cudaDriverEntryPointQueryResult q{};
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
            q != cudaDriverEntryPointSuccess)
            return nullptr;
        return reinterpret_cast<Encode>(fn);
    }();
    if (encode == nullptr) return false;
    // Strides of size-1 dimensions are never used; give them a valid (16-byte multiple) value.
    const uint64_t tBytes = static_cast<uint64_t>(s.t) * 2;
    const uint64_t hBytes = H > 1 ? static_cast<uint64_t>(s.h) * 2 : tBytes * T;
    const uint64_t bBytes = B > 1 ? static_cast<uint64_t>(s.b) * 2 : hBytes * H;
    const cuuint64_t dims[4] = {static_cast<cuuint64_t>(D), static_cast<cuuint64_t>(T), static_cast<cuuint64_t>(H),
                                static_cast<cuuint64_t>(B)};
    const cuuint64_t strides[3] = {tBytes, hBytes, bBytes};
    const cuuint32_t box[4] = {64, static_cast<cuuint32_t>(rows), 1, 1};
    const cuuint32_t elemStrides[4] = {1, 1, 1, 1};
    const auto type = elem == ElemType::BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
    return encode(map, type, 4, const_cast<void*>(ptr), dims, strides, box, elemStrides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                  CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

bool span_attention_fwd_sm90_launch(const SpanAttentionParams& p, int variant, cudaStream_t stream) {
    return p.elem == ElemType::BF16 ? launchSm90Variant<__nv_bfloat16>(p, variant, stream)
                                    : launchSm90Variant<__half>(p, variant, stream);
}

}  // namespace spanscope::cuda
