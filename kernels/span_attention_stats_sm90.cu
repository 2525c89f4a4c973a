// Attention statistics on Hopper tensor cores (wgmma + TMA, sm_90a): the contract and results of
// span_attention_stats.cu's mma.sync kernel on the warp-specialised skeleton of the Hopper forward
// (span_attention_fwd_sm90.cu). span_attention_stats_launch picks it on compute capability 9.0.
//
// One thread block = 1 + NCW warpgroups for BR = 64·NCW queries [q0, q0 + BR) of one head; MINB
// blocks share an SM.
// Warpgroup 0 is the producer: one thread issues the TMA loads (Q once, then the K tiles into
// STAGES shared-memory stages, SW128 layout) that complete on "full" mbarriers; when a pooled map
// is wanted, its second warp computes each tile's key bins into the stage's key-bin array and
// arrives on the same barrier (so a stage is full when both its keys and their bins are in).
// Warpgroups 1 .. NCW are consumers of 64 rows each (4 warps x 16 rows): per key tile they wait
// for it, compute S = Q K^T by D/16 wgmma (both operands in shared memory) and run the per-warp
// statistics of kernels/stats_tile.cuh on the accumulators (the mma.sync C-fragment layout, one
// m16 tile per warp), then each warp releases the stage ("empty" barrier, one arrival per
// consumer warp). No block-wide barrier in the loop: a warpgroup computing its exponentials
// overlaps another's wgmma. The block's per-head sums meet at a named barrier of the consumers.
// As in the forward, a warpgroup whose rows see none of a tile waits for the tile before
// releasing it (its arrivals must not count towards a later phase of the empty barrier).
#include "kernels/span_attention.h"

#include <cuda.h>

#include "kernels/launch.cuh"
#include "kernels/stats_tile.cuh"
#include "kernels/tma_map.h"
#include "kernels/wgmma.cuh"

namespace spanscope::cuda {
namespace {

struct Sm90StatsArgs {
    SpanStatsParams p;
    CUtensorMap q, k;  // (1, H, T, D) as 4-d maps (kernels/tma_map.h)
};

template <int D, int BC, int STAGES, int NCW, int MINB> struct Sm90StatsConfig {
    static constexpr int kBr = 64 * NCW;
    static constexpr int kThreads = 128 * (NCW + 1);
    // Registers per thread after setmaxnreg (kernels/wgmma.cuh); MINB blocks share an SM.
    static constexpr int kProducerRegs = WsRegisterSplit<NCW, MINB>::kProducer;
    static constexpr int kConsumerRegs = WsRegisterSplit<NCW, MINB>::kConsumer;
    static constexpr size_t kTiles = static_cast<size_t>(kBr + STAGES * BC) * D * 2;
    // + per-lane distance bins of each consumer warp + barriers (Q, full and empty per stage) + key
    // bins per stage + alignment slack
    static constexpr size_t kLaneBins = static_cast<size_t>(4 * NCW) * kStatsDistanceBins * 32 * 4;
    static constexpr size_t kSmem = kTiles + kLaneBins + (1 + 2 * STAGES) * 8 + STAGES * BC + 1024;
    // 227 KiB per SM for blocks, 1 KiB of it reserved per block.
    static_assert(MINB * (kSmem + 1024 + 512) <= 233472, "shared memory");
};

template <int D, int BC, int STAGES, int NCW, int MINB, typename T>
__global__ void __launch_bounds__(128 * (NCW + 1), MINB) span_attention_stats_ws_kernel(const __grid_constant__ Sm90StatsArgs a) {
#if defined(SPANSCOPE_WGMMA_DEVICE)
    using Cfg = Sm90StatsConfig<D, BC, STAGES, NCW, MINB>;
    constexpr int BR = Cfg::kBr;
    const SpanStatsParams& p = a.p;
    extern __shared__ unsigned char smemRaw[];
    unsigned char* base = smemRaw + ((1024 - (smemAddr(smemRaw) & 1023)) & 1023);
    T* sQ = reinterpret_cast<T*>(base);  // (BR, D)
    T* sK = sQ + BR * D;                 // STAGES x (BC, D)
    float* sLaneBins = reinterpret_cast<float*>(base + Cfg::kTiles);  // (4 NCW) x kStatsDistanceBins x 32
    uint64_t* fullQ = reinterpret_cast<uint64_t*>(base + Cfg::kTiles + Cfg::kLaneBins);
    uint64_t* fullK = fullQ + 1;
    uint64_t* emptyK = fullK + STAGES;
    int8_t* sKeyBin = reinterpret_cast<int8_t*>(emptyK + STAGES);  // STAGES x BC: keyBinOffset per key
    __shared__ float sBins[kStatsDistanceBins];
    __shared__ float sRed[4][16];

    const int T_ = p.T;
    const StatsRegion reg(p);
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BR;
    const int h = blockIdx.y;
    const int qLast = min(q0 + BR, T_) - 1;
    const int kBegin = static_cast<int>(p.mask.firstKey(q0)) / BC * BC;
    const int nTiles = (qLast + 1 - kBegin + BC - 1) / BC;
    const int tid = threadIdx.x, wgAll = __shfl_sync(0xffffffffu, tid / 128, 0);

    if (tid < kStatsDistanceBins) sBins[tid] = 0.f;
    if (tid == 0) {
        mbarInit(fullQ, 1);
        for (int st = 0; st < STAGES; ++st) {
            mbarInit(fullK + st, reg.pooling ? 2 : 1);  // the TMA thread (+ the key-bin warp)
            mbarInit(emptyK + st, 4 * NCW);            // one arrival per consumer warp
        }
        mbarInitFence();
    }
    __syncthreads();

    if (wgAll == 0) {  // producer
        setMaxRegsDec<Cfg::kProducerRegs>();
        if (tid == 0) {
            mbarArriveExpectTx(fullQ, BR * D * 2);
            tmaLoadTile<D, BR>(sQ, &a.q, q0, h, 0, fullQ);
            for (int it = 0; it < nTiles; ++it) {
                const int st = it % STAGES, k0 = kBegin + it * BC;
                if (it >= STAGES) mbarWaitThread(emptyK + st, ((it / STAGES) - 1) & 1);
                mbarArriveExpectTx(fullK + st, BC * D * 2);
                tmaLoadTile<D, BC>(sK + st * BC * D, &a.k, k0, h, 0, fullK + st);
            }
        } else if (reg.pooling && tid / 32 == 1) {
            const int lane = tid % 32;
            for (int it = 0; it < nTiles; ++it) {
                const int st = it % STAGES, k0 = kBegin + it * BC;
                if (it >= STAGES) mbarWait(emptyK + st, ((it / STAGES) - 1) & 1);
                for (int x = lane; x < BC; x += 32) sKeyBin[st * BC + x] = keyBinOffset(p, reg, k0 + x, k0);
                __syncwarp();
                if (lane == 0) mbarArrive(fullK + st);
            }
        }
        return;
    }
    setMaxRegsInc<Cfg::kConsumerRegs>();

    const int wg = wgAll - 1, warp = (tid % 128) / 32, lane = tid % 32;
    const int gRow0 = q0 + 64 * wg;
    const int gRowLast = min(gRow0 + 64, T_) - 1;
    const int gFirstLo = gRowLast >= gRow0 ? static_cast<int>(p.mask.firstKey(gRow0)) : 0;
    StatsWarp<1> sw;
    sw.init(p, reg, h, gRow0 + 16 * warp, sLaneBins + (4 * wg + warp) * kStatsDistanceBins * 32, lane);
    const T* sQw = sQ + 64 * wg * 64;

    mbarWait(fullQ, 0);
    auto issueS = [&](float (&s)[1][BC / 8][4], int it) {
        const int stage = it % STAGES;
        mbarWait(fullK + stage, (it / STAGES) & 1);
        wgmmaFence();
        wgmmaScores<D, BC, BR, T>(s[0], sQw, sK + stage * BC * D);
        wgmmaCommit();
    };
    // The warp's statistics of tile it, then its release (after the warp's reads of the key bins).
    auto finishTile = [&](float (&s)[1][BC / 8][4], int it) {
        const int k0 = kBegin + it * BC, stage = it % STAGES;
        if (sw.live(k0, BC)) sw.template tile<BC>(p, reg, s, k0, sKeyBin + stage * BC, h, lane);
        __syncwarp();
        if (lane == 0) mbarArrive(emptyK + stage);
    };
    auto skipTile = [&](int it) {
        const int stage = it % STAGES;
        mbarWait(fullK + stage, (it / STAGES) & 1);
        if (lane == 0) mbarArrive(emptyK + stage);
    };
    // The warpgroup's tiles: [itFirst, itLast] (kBegin <= firstKey(gRow0) and gRow0 >= kBegin).
    const int itFirst = gRowLast >= gRow0 ? (gFirstLo - kBegin) / BC : nTiles;
    const int itLast = gRowLast >= gRow0 ? min(nTiles - 1, (gRowLast - kBegin) / BC) : -1;
    for (int it = 0; it < nTiles; ++it) {
        if (it >= itFirst && it <= itLast) {
            float s[1][BC / 8][4];
            issueS(s, it);
            wgmmaWait<0>();
            fenceAccumulators(s[0]);
            finishTile(s, it);
        } else {
            skipTile(it);
        }
    }

    float sums[4];
    sw.finish(p, lane, sBins, sums);
    if (lane == 0)
        for (int x = 0; x < 4; ++x) sRed[x][4 * wg + warp] = sums[x];
    namedBarrierSync(1, 128 * NCW);
    addBlockStats(p, sRed, 4 * NCW, sBins, h, tid - 128);
#else
    __trap();
#endif
}

template <int D, int BC, int STAGES, int NCW, int MINB, typename T>
bool launchSm90Stats(const SpanStatsParams& p, cudaStream_t stream) {
    using Cfg = Sm90StatsConfig<D, BC, STAGES, NCW, MINB>;
    static_assert(4 * NCW <= 16, "sRed holds 16 warps");
    Sm90StatsArgs args;
    args.p = p;
    if (!encodeTmaMap4d(&args.q, p.q, p.qs, 1, p.H, p.T, p.D, p.elem, Cfg::kBr) ||
        !encodeTmaMap4d(&args.k, p.k, p.ks, 1, p.H, p.T, p.D, p.elem, BC))
        return false;
    launchKernel(span_attention_stats_ws_kernel<D, BC, STAGES, NCW, MINB, T>, dim3((p.T + Cfg::kBr - 1) / Cfg::kBr, p.H),
                 Cfg::kThreads, Cfg::kSmem, stream, args, "span attention stats (sm90, TMA)");
    return true;
}

template <int D, typename T> bool launchStatsVariant(const SpanStatsParams& p, int variant, cudaStream_t stream) {
    // <key tile, stages, consumer warpgroups, blocks per SM>. Variant 0 picks by mask and head
    // dim, from the H100 runs of 2026-11-24 (bench/tune_fwd.py --stats-variants, N = 16k): 128-key
    // tiles with three consumer warpgroups for full attention; for window and block masks (short
    // visits per row: per-tile work and the diagonal weigh more) 64-key tiles, at d = 64 with one
    // consumer warpgroup per block and four blocks per SM (their starts and ends overlap each
    // other's tiles; 5-7 % less time than one block of four warpgroups), at d = 128 with four
    // warpgroups in one block (four small blocks do not fit its tiles). Also measured there and
    // dropped: two consumer warpgroups, six stages (no change), warpgroups taking turns at their
    // exponentials (FlashAttention-3's ping-pong: 3-25 % slower), exponentials of part of each
    // tile on the FMA pipe (FlashAttention-4's polynomial: slower here), and S of the next tile
    // issued before this tile's statistics (ptxas then serialises every wgmma, C7514).
    if (variant == 0) variant = p.mask.kind == MaskKind::Full ? 1 : D == 64 ? 5 : 2;
    switch (variant) {
    case 2: return launchSm90Stats<D, 64, 4, 4, 1, T>(p, stream);
    case 3: return launchSm90Stats<D, 64, 4, 3, 1, T>(p, stream);
    case 4:  // two blocks of two consumer warpgroups (at d = 128 104 registers spill: variant 2 there)
        if constexpr (D == 64) return launchSm90Stats<D, 64, 4, 2, 2, T>(p, stream);
        else return launchSm90Stats<D, 64, 4, 4, 1, T>(p, stream);
    case 5: return launchSm90Stats<D, 64, D == 64 ? 4 : 2, 1, D == 64 ? 4 : 3, T>(p, stream);  // blocks of one
    default: return launchSm90Stats<D, 128, 3, 3, 1, T>(p, stream);
    }
}

}  // namespace

bool span_attention_stats_sm90_launch(const SpanStatsParams& p, int variant, cudaStream_t stream) {
    const bool bf16 = p.elem == ElemType::BF16;
    if (p.D == 64) return bf16 ? launchStatsVariant<64, __nv_bfloat16>(p, variant, stream) : launchStatsVariant<64, __half>(p, variant, stream);
    return bf16 ? launchStatsVariant<128, __nv_bfloat16>(p, variant, stream) : launchStatsVariant<128, __half>(p, variant, stream);
}

}  // namespace spanscope::cuda
