// SparseK attention forward: selection mask and attention fused per block of 128 queries.
//
// q, k, v: (B, H, T, D) bf16/fp16, u, tau: (B, H, T) fp32 -> out (B, H, T, D), lse (B, H, T) fp32.
//
// Algorithm. One thread block (4 warps, 32 rows each, as in span_attention_fwd.cu) owns queries
// [q0, q0+128) of one (b, h). Its keys come in two runs of tiles through one double-buffered
// cp.async pipeline:
//   1. Gathered tiles: the block's selected keys (the plan's ascending list L_b, the union of what
//      its queries selected; at most k·128 entries, about k + 128 when selections persist, which
//      is SparseK's point: a key that drops out never returns). K/V rows are copied by index, and
//      the key positions and scores u_j go to shared memory beside them. Per element the mask is
//      recomputed, m_ij = clip(u_j - tau_i, 0, 1) for j <= i - w, and the score becomes
//      s_ij * scale * log2 e + log2 m_ij (-inf where m = 0 or j is in or after i's window).
//   2. Window tiles: keys [q0 - w + 1, q0 + 127] with the window mask i - w < j <= i.
// Both feed the same online softmax and O += P V (mma_tile.cuh), so a key that is both in L_b and in
// some row's window counts once per row: as selected where j <= i - w, as window key otherwise.
// A warp skips a gathered tile whose first key is after all its rows' candidate ranges, and a
// window tile outside its rows' windows. Rows past T are zero-filled and never stored.
#include "kernels/span_attention.h"

#include <stdexcept>
#include <string>

#include "kernels/launch.cuh"
#include "kernels/mma_tile.cuh"

namespace spanscope::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kMT = 2;
constexpr int kBr = kWarps * kMT * 16;
static_assert(kBr == kSparseKBlockRows, "the plan's block size is the kernel's query tile");

template <int D, typename T, int BC, bool QREGS>
__global__ void __launch_bounds__(kThreads) sparsek_attention_fwd_kernel(const SparseKAttentionFwdParams p) {
    extern __shared__ __align__(128) unsigned char smemRaw[];
    T* sQ = reinterpret_cast<T*>(smemRaw);          // (kBr, D), reused to stage the output
    T* sK = sQ + kBr * D;                           // 2 stages of (BC, D)
    T* sV = sK + 2 * BC * D;                        // 2 stages of (BC, D)
    int32_t* sIdx = reinterpret_cast<int32_t*>(sV + 2 * BC * D);  // 2 stages of BC key positions
    float* sU = reinterpret_cast<float*>(sIdx + 2 * BC);           // 2 stages of BC key scores

    const int T_ = p.T, W = p.window;
    const int nBlocks = gridDim.x;
    const int blk = nBlocks - 1 - blockIdx.x;  // long rows first
    const int q0 = blk * kBr;
    const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H;
    const T* qg = static_cast<const T*>(p.q) + b * p.qs.b + h * p.qs.h;
    const T* kg = static_cast<const T*>(p.k) + b * p.ks.b + h * p.ks.h;
    const T* vg = static_cast<const T*>(p.v) + b * p.vs.b + h * p.vs.h;
    T* og = static_cast<T*>(p.out) + b * p.os.b + h * p.os.h;
    const float* ug = p.u + static_cast<int64_t>(bh) * T_;
    const float* taug = p.tau + static_cast<int64_t>(bh) * T_;
    const int32_t listBegin = p.blockOffsets[static_cast<int64_t>(bh) * nBlocks + blk];
    const int nSel = p.blockOffsets[static_cast<int64_t>(bh) * nBlocks + blk + 1] - listBegin;
    const int32_t* keys = p.blockKeys + listBegin;

    const int qLast = min(q0 + kBr, T_) - 1;
    const int nGather = (nSel + BC - 1) / BC;
    const int wBegin = max(0, q0 - W + 1) / BC * BC;
    const int nTiles = nGather + (qLast + 1 - wBegin + BC - 1) / BC;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, c = lane % 4;
    const int wRowLocal = warp * kMT * 16;
    const int wRow0 = q0 + wRowLocal;
    const int wRowLast = min(wRow0 + kMT * 16, T_) - 1;  // < wRow0 when the warp has no real rows

    // Tile t of the pipeline into stage st: gathered (t < nGather) or contiguous window keys.
    auto loadKV = [&](int t, int st) {
        if (t < nGather) {
            loadGatheredKV<BC, D, kThreads>(sK + st * BC * D, sV + st * BC * D, sIdx + st * BC, sU + st * BC, kg, p.ks.t, vg,
                                            p.vs.t, ug, keys, t * BC, nSel);
        } else {
            const int k0 = wBegin + (t - nGather) * BC;
            loadTile<BC, D, kThreads>(sK + st * BC * D, kg, p.ks.t, k0, T_);
            loadTile<BC, D, kThreads>(sV + st * BC * D, vg, p.vs.t, k0, T_);
        }
    };

    loadTile<kBr, D, kThreads>(sQ, qg, p.qs.t, q0, T_);
    cpAsyncCommit();
    if (nTiles > 0) loadKV(0, 0);
    cpAsyncCommit();

    int rowI[kMT][2];
    float tauRow[kMT][2];
    float o[kMT][D / 8][4], m[kMT][2], l[kMT][2];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            rowI[mt][r] = wRow0 + mt * 16 + g + 8 * r;
            tauRow[mt][r] = rowI[mt][r] < T_ ? taug[rowI[mt][r]] : INFINITY;
            m[mt][r] = -INFINITY;
            l[mt][r] = 0.f;
        }
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.f;
    }
    uint32_t qf[QREGS ? kMT : 1][QREGS ? D / 16 : 1][4];
    const float sl2 = p.scale * 1.4426950408889634f;

    for (int it = 0; it < nTiles; ++it) {
        const int stage = it & 1;
        if (it + 1 < nTiles) loadKV(it + 1, stage ^ 1);
        cpAsyncCommit();
        cpAsyncWait<1>();
        __syncthreads();
        if constexpr (QREGS) {
            if (it == 0) loadQFragments<D, kMT, T>(qf, sQ, wRowLocal, lane);
        }
        const T* kt = sK + stage * BC * D;
        const T* vt = sV + stage * BC * D;
        const bool gathered = it < nGather;
        const int k0 = gathered ? 0 : wBegin + (it - nGather) * BC;
        // Live: some row of the warp may use the tile (gathered: the tile's first key is a
        // candidate of the warp's last row; window: the tile meets [wRow0 - W + 1, wRowLast]).
        const bool live = wRowLast >= wRow0 &&
                          (gathered ? sIdx[stage * BC] <= wRowLast - W : k0 <= wRowLast && k0 + BC - 1 >= wRow0 - W + 1);
        if (live) {
            float s[kMT][BC / 8][4];
            warpScores<D, BC, kMT, QREGS, T>(s, qf, sQ, kt, wRowLocal, lane);
#pragma unroll
            for (int nt = 0; nt < BC / 8; ++nt)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int col = nt * 8 + 2 * c + e;
                    const int j = gathered ? sIdx[stage * BC + col] : k0 + col;
                    const float uj = gathered ? sU[stage * BC + col] : 0.f;
#pragma unroll
                    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                        for (int r = 0; r < 2; ++r) {
                            const int i = rowI[mt][r];
                            float& x = s[mt][nt][2 * r + e];
                            if (gathered) {
                                const float mm = uj - tauRow[mt][r];
                                x = (j >= 0 && j <= i - W && mm > 0.f) ? fmaf(x, sl2, __log2f(fminf(mm, 1.f))) : -INFINITY;
                            } else {
                                x = (j <= i && j > i - W) ? x * sl2 : -INFINITY;
                            }
                        }
                }
            onlineSoftmaxPV<D, BC, kMT, T>(s, m, l, o, 1.0f, vt, lane);
        }
        __syncthreads();
    }

    storeWarpRows<D, kMT, T>(o, m, l, wRow0, sQ, wRowLocal, og, p.os.t, p.lse + static_cast<int64_t>(bh) * T_, T_, lane);
}

template <int D, typename T, int BC, bool QREGS>
void launchSparseK(const SparseKAttentionFwdParams& p, cudaStream_t stream) {
    const size_t smem = static_cast<size_t>(kBr + 4 * BC) * D * sizeof(T) + 2 * BC * (sizeof(int32_t) + sizeof(float));
    launchKernel(sparsek_attention_fwd_kernel<D, T, BC, QREGS>, dim3((p.T + kBr - 1) / kBr, p.B * p.H), kThreads, smem, stream,
                 p, "sparsek attention forward");
}

}  // namespace

void sparsek_attention_fwd_launch(const SparseKAttentionFwdParams& p, cudaStream_t stream) {
    if (p.T <= 0 || p.B * p.H <= 0) return;
    if (p.window < 1) throw std::invalid_argument("sparsek attention: window must be >= 1, got " + std::to_string(p.window));
    const bool bf16 = p.elem == ElemType::BF16;
    // The span forward's tile shapes (bench/tune_fwd.py): d=64 64-key tiles with Q in registers,
    // d=128 32-key tiles.
    if (p.D == 64) bf16 ? launchSparseK<64, __nv_bfloat16, 64, true>(p, stream) : launchSparseK<64, __half, 64, true>(p, stream);
    else if (p.D == 128)
        bf16 ? launchSparseK<128, __nv_bfloat16, 32, false>(p, stream) : launchSparseK<128, __half, 32, false>(p, stream);
    else throw std::invalid_argument("sparsek attention: head dim must be 64 or 128, got " + std::to_string(p.D));
}

}  // namespace spanscope::cuda
