// Attention statistics without the N x N matrix: a second pass after the forward.
//
// q, k: (1, H, T, D) bf16/fp16, lse: (H, T) fp32 -> sums into SpanStatsParams' outputs.
//
// Two kernels share the per-warp work (kernels/stats_tile.cuh: probabilities from the stored row
// log-sum-exp, so no running maximum and every sum is final; per-row sums in registers, per-head
// sums reduced over the block and added once in fp64; distance bins and the pooled map by the
// cheapest exact path for the tile). span_attention_stats_launch picks the Hopper one
// (span_attention_stats_sm90.cu: TMA + wgmma, warp-specialised) on compute capability 9.0 in an
// sm_90a build, this file's mma.sync kernel elsewhere or when TMA cannot map the tensors;
// SPANSCOPE_STATS_KERNEL=mma|sm90:N overrides the choice as SPANSCOPE_FWD_KERNEL does the forward's.
//
// This file's kernel: the forward's tiling (a block owns 128 queries of one head; 4 warps x 32
// rows; only key tiles in [firstKey(q0), q0+128) are visited; the element mask only on boundary
// tiles); each tile's scores are recomputed on tensor cores (mma.sync), K tiles double-buffered
// with cp.async. The tile's key bins are computed once per block into shared memory.
#include "kernels/span_attention.h"

#include <stdexcept>
#include <string>

#include "kernels/launch.cuh"
#include "kernels/mma_tile.cuh"
#include "kernels/stats_tile.cuh"

namespace spanscope::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kMT = 2;
constexpr int kBr = kWarps * kMT * 16;
constexpr int kBc = 64;

template <int D, typename T>
__global__ void __launch_bounds__(kThreads) span_attention_stats_kernel(const SpanStatsParams p) {
    constexpr bool QREGS = D == 64;
    extern __shared__ __align__(128) unsigned char smemRaw[];
    T* sQ = reinterpret_cast<T*>(smemRaw);
    T* sK = sQ + kBr * D;
    __shared__ float sBins[kStatsDistanceBins];
    __shared__ float sRed[4][16];
    __shared__ int8_t sKeyBin[kBc];  // keyBinOffset of each key of the tile (stats_tile.cuh)
    __shared__ float sLaneBins[kWarps][kStatsDistanceBins * 32];  // StatsWarp's per-lane distance bins

    const int T_ = p.T;
    const StatsRegion reg(p);
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kBr;
    const int h = blockIdx.y;
    const T* qg = static_cast<const T*>(p.q) + h * p.qs.h;
    const T* kg = static_cast<const T*>(p.k) + h * p.ks.h;

    const int qLast = min(q0 + kBr, T_) - 1;
    const int kBegin = static_cast<int>(p.mask.firstKey(q0)) / kBc * kBc;
    const int nTiles = (qLast + 1 - kBegin + kBc - 1) / kBc;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wRowLocal = warp * kMT * 16;

    if (threadIdx.x < kStatsDistanceBins) sBins[threadIdx.x] = 0.f;
    loadTile<kBr, D, kThreads>(sQ, qg, p.qs.t, q0, T_);
    cpAsyncCommit();
    loadTile<kBc, D, kThreads>(sK, kg, p.ks.t, kBegin, T_);
    cpAsyncCommit();

    StatsWarp<kMT> sw;
    sw.init(p, reg, h, q0 + wRowLocal, sLaneBins[warp], lane);
    uint32_t qf[QREGS ? kMT : 1][QREGS ? D / 16 : 1][4];

    for (int it = 0; it < nTiles; ++it) {
        const int k0 = kBegin + it * kBc;
        const int stage = it & 1;
        if (it + 1 < nTiles) loadTile<kBc, D, kThreads>(sK + (stage ^ 1) * kBc * D, kg, p.ks.t, k0 + kBc, T_);
        cpAsyncCommit();
        // Key bins of this tile (read after the barrier; the last reads were before the previous one).
        if (reg.pooling && threadIdx.x < kBc) sKeyBin[threadIdx.x] = keyBinOffset(p, reg, k0 + threadIdx.x, k0);
        cpAsyncWait<1>();
        __syncthreads();
        if constexpr (QREGS) {
            if (it == 0) loadQFragments<D, kMT, T>(qf, sQ, wRowLocal, lane);
        }
        if (sw.live(k0, kBc)) {
            float s[kMT][kBc / 8][4];
            warpScores<D, kBc, kMT, QREGS, T>(s, qf, sQ, sK + stage * kBc * D, wRowLocal, lane);
            sw.template tile<kBc>(p, reg, s, k0, sKeyBin, h, lane);
        }
        __syncthreads();
    }

    float sums[4];
    sw.finish(p, lane, sBins, sums);
    if (lane == 0)
        for (int x = 0; x < 4; ++x) sRed[x][warp] = sums[x];
    __syncthreads();
    addBlockStats(p, sRed, kWarps, sBins, h, threadIdx.x);
}

template <int D, typename T>
void launchStats(const SpanStatsParams& p, cudaStream_t stream) {
    const size_t smem = static_cast<size_t>(kBr + 2 * kBc) * D * sizeof(T);
    launchKernel(span_attention_stats_kernel<D, T>, dim3((p.T + kBr - 1) / kBr, p.H), kThreads, smem, stream, p,
                 "span attention stats");
}

}  // namespace

void span_attention_stats_launch(const SpanStatsParams& p, cudaStream_t stream) {
    if (p.T <= 0 || p.H <= 0) return;
    if (p.D != 64 && p.D != 128)
        throw std::invalid_argument("span attention stats: head dim must be 64 or 128, got " + std::to_string(p.D));
    if (const int variant = sm90KernelChoice("SPANSCOPE_STATS_KERNEL"); variant >= 0)
        if (span_attention_stats_sm90_launch(p, variant, stream)) return;
    const bool bf16 = p.elem == ElemType::BF16;
    if (p.D == 64) bf16 ? launchStats<64, __nv_bfloat16>(p, stream) : launchStats<64, __half>(p, stream);
    else bf16 ? launchStats<128, __nv_bfloat16>(p, stream) : launchStats<128, __half>(p, stream);
}

}  // namespace spanscope::cuda
