// SparseK attention backward, the gathered part: gradients through the keys each query selected
// beyond its window (the window part is span_attention_bwd.cu with the window mask, fed the
// SparseK forward's lse and delta — window keys have m = 1 — see span_attention.h).
//
// Algorithm. One thread block (4 warps, 16 query rows each) owns kSparseKBwdRows = 64 queries
// [q0, q0+64) of one (b, h): half of a plan block, whose ascending key list L_b (the union of what
// its 128 queries selected) it walks in tiles of 64 gathered keys through a double-buffered
// cp.async pipeline (K, V rows copied by index; key positions and scores u_j beside them). Q and dO
// of the 64 queries stay in shared memory. Per tile, each warp for its 16 rows:
//   S = Q Kᵀ, dP = dO Vᵀ on tensor cores;
//   per element, where j <= i - w and mm = u_j - tau_i > 0 (m = min(mm, 1)):
//     e = exp2(S·scale·log2e - lse_i·log2e), P = e·m, gm = e (dP - delta_i), dS = gm·m
//   (m, P, dS are 0 elsewhere); on the free set (0 < mm < 1, in a row that does not select all of
//   its candidates) gm is added to the row's sum and count and to its key's column sum (du's first
//   term: shuffles over the warp's rows, shared-memory atomics over the warps, one global atomic
//   per key and tile);
//   dQ += dS K (registers, stored once at the end: no other gathered block writes these rows).
// P and dS then go through shared memory (bf16/fp16, as the tensor cores take them) and each warp
// multiplies 16 of the tile's keys by the 64 queries: dV_j += Pᵀ dO, dK_j += dSᵀ Q · scale, added
// into the fp32 accumulators with atomics (a key is in many blocks' lists).
// Last, the SPARSEK Jacobian's mean term: with c_i = (Σ_F gm_ij) / |F_i| for the block's rows, each
// key of L_b subtracts Σ_i c_i over the block's rows whose free set holds it (recomputed from u_j
// and tau_i with the same float test as above, so the two terms see the same free sets).
// Rows past T are zero-filled and never stored; gathered entries past the list are key -1.
#include "kernels/span_attention.h"

#include <stdexcept>
#include <string>

#include "kernels/launch.cuh"
#include "kernels/mma_tile.cuh"

namespace spanscope::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBq = kSparseKBwdRows;  // queries per block
constexpr int kBC = 64;               // gathered keys per tile
static_assert(kBq == kWarps * 16, "one warp per 16 query rows");
static_assert(kSparseKBlockRows % kBq == 0, "a backward block is part of one plan block");
constexpr float kLog2e = 1.4426950408889634f;

template <int D, typename T>
__global__ void __launch_bounds__(kThreads) sparsek_attention_bwd_kernel(const SparseKAttentionBwdParams p) {
    extern __shared__ __align__(128) unsigned char smemRaw[];
    T* sQ = reinterpret_cast<T*>(smemRaw);  // (kBq, D)
    T* sdO = sQ + kBq * D;                  // (kBq, D)
    T* sK = sdO + kBq * D;                  // 2 stages of (kBC, D)
    T* sV = sK + 2 * kBC * D;               // 2 stages of (kBC, D)
    T* sP = sV + 2 * kBC * D;               // (kBq, kBC): P of the current tile (row = query)
    T* sdS = sP + kBq * kBC;                // (kBq, kBC): dS of the current tile
    int32_t* sIdx = reinterpret_cast<int32_t*>(sdS + kBq * kBC);  // 2 stages of kBC key positions
    float* sU = reinterpret_cast<float*>(sIdx + 2 * kBC);          // 2 stages of kBC key scores
    float* sDu = sU + 2 * kBC;                                     // (kBC) column sums of gm on free sets
    float* sRowC = sDu + kBC;                                      // (kBq) mean of gm over each row's free set
    float* sRowTau = sRowC + kBq;                                  // (kBq)

    const int T_ = p.T, W = p.window;
    const int q0 = blockIdx.x * kBq;
    const int blk = q0 / kSparseKBlockRows;
    const int nPlanBlocks = (T_ + kSparseKBlockRows - 1) / kSparseKBlockRows;
    const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H;
    const T* qg = static_cast<const T*>(p.q) + b * p.qs.b + h * p.qs.h;
    const T* kg = static_cast<const T*>(p.k) + b * p.ks.b + h * p.ks.h;
    const T* vg = static_cast<const T*>(p.v) + b * p.vs.b + h * p.vs.h;
    const T* dog = static_cast<const T*>(p.dout) + b * p.dos.b + h * p.dos.h;
    const int64_t rowBase = static_cast<int64_t>(bh) * T_;
    const float* ug = p.u + rowBase;
    float* dug = p.du + rowBase;
    float* dkg = p.dkAccum + rowBase * D;
    float* dvg = p.dvAccum + rowBase * D;
    const int32_t listBegin = p.blockOffsets[static_cast<int64_t>(bh) * nPlanBlocks + blk];
    const int nSel = p.blockOffsets[static_cast<int64_t>(bh) * nPlanBlocks + blk + 1] - listBegin;
    const int32_t* keys = p.blockKeys + listBegin;
    const int nTiles = (nSel + kBC - 1) / kBC;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, c = lane % 4;
    const int wRowLocal = warp * 16;

    auto loadKV = [&](int t, int st) {
        loadGatheredKV<kBC, D, kThreads>(sK + st * kBC * D, sV + st * kBC * D, sIdx + st * kBC, sU + st * kBC, kg, p.ks.t, vg,
                                         p.vs.t, ug, keys, t * kBC, nSel);
    };

    loadTile<kBq, D, kThreads>(sQ, qg, p.qs.t, q0, T_);
    loadTile<kBq, D, kThreads>(sdO, dog, p.dos.t, q0, T_);
    cpAsyncCommit();
    if (nTiles > 0) loadKV(0, 0);
    cpAsyncCommit();
    for (int x = threadIdx.x; x < kBC; x += kThreads) sDu[x] = 0.f;

    int rowI[2];
    float tauRow[2], lse2[2], deltaRow[2], freeSum[2] = {0.f, 0.f}, freeCount[2] = {0.f, 0.f};
    bool rowFree[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int i = q0 + wRowLocal + g + 8 * r;
        const bool in = i < T_;
        rowI[r] = i;
        tauRow[r] = in ? p.tau[rowBase + i] : INFINITY;
        lse2[r] = in ? p.lse[rowBase + i] * kLog2e : 0.f;
        deltaRow[r] = in ? p.delta[rowBase + i] : 0.f;
        // A row whose budget covers all its candidates selects them fully: no free set.
        rowFree[r] = in && static_cast<double>(i - W + 1) > p.topK;
    }
    float dq[D / 8][4];
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) dq[dt][0] = dq[dt][1] = dq[dt][2] = dq[dt][3] = 0.f;
    const float sl2 = p.scale * kLog2e;
    const uint32_t noRegs[1][1][4] = {};

    for (int it = 0; it < nTiles; ++it) {
        const int stage = it & 1;
        if (it + 1 < nTiles) loadKV(it + 1, stage ^ 1);
        cpAsyncCommit();
        cpAsyncWait<1>();
        __syncthreads();
        const T* kt = sK + stage * kBC * D;
        const T* vt = sV + stage * kBC * D;
        const int32_t* idx = sIdx + stage * kBC;
        const float* us = sU + stage * kBC;

        float s[1][kBC / 8][4], dp[1][kBC / 8][4];
        warpScores<D, kBC, 1, false, T>(s, noRegs, sQ, kt, wRowLocal, lane);
        warpScores<D, kBC, 1, false, T>(dp, noRegs, sdO, vt, wRowLocal, lane);
#pragma unroll
        for (int nt = 0; nt < kBC / 8; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int col = nt * 8 + 2 * c + e;
                const int j = idx[col];
                const float uj = us[col];
                float colSum = 0.f;
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    const float mm = uj - tauRow[r];
                    const bool ok = j >= 0 && j <= rowI[r] - W && mm > 0.f;
                    const float ex = ok ? fastExp2(fmaf(s[0][nt][2 * r + e], sl2, -lse2[r])) : 0.f;
                    const float gm = ex * (dp[0][nt][2 * r + e] - deltaRow[r]);
                    const float mk = ok ? fminf(mm, 1.f) : 0.f;
                    s[0][nt][2 * r + e] = ex * mk;   // P
                    dp[0][nt][2 * r + e] = gm * mk;  // dS
                    if (ok && rowFree[r] && mm < 1.f) {
                        freeSum[r] += gm;
                        freeCount[r] += 1.f;
                        colSum += gm;
                    }
                }
                // Column sum over the warp's 16 rows (lanes of one c), then over the warps.
                colSum += __shfl_xor_sync(0xffffffffu, colSum, 4);
                colSum += __shfl_xor_sync(0xffffffffu, colSum, 8);
                colSum += __shfl_xor_sync(0xffffffffu, colSum, 16);
                if (g == 0 && colSum != 0.f) atomicAdd(sDu + col, colSum);
            }
        // dQ += dS K: dS's C fragments of key columns 16kk.. are the A fragment of k-step kk.
#pragma unroll
        for (int kk = 0; kk < kBC / 16; ++kk) {
            uint32_t a[4];
            a[0] = packPair<T>(dp[0][2 * kk][0], dp[0][2 * kk][1]);
            a[1] = packPair<T>(dp[0][2 * kk][2], dp[0][2 * kk][3]);
            a[2] = packPair<T>(dp[0][2 * kk + 1][0], dp[0][2 * kk + 1][1]);
            a[3] = packPair<T>(dp[0][2 * kk + 1][2], dp[0][2 * kk + 1][3]);
#pragma unroll
            for (int dpair = 0; dpair < D / 16; ++dpair) {
                uint32_t bk[4];
                ldmatrixX4Trans(bk, smemAddr(kt + swz<D>(kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), dpair * 16 + (lane >> 4) * 8)));
                mma16816<T>(dq[2 * dpair], a, bk[0], bk[1]);
                mma16816<T>(dq[2 * dpair + 1], a, bk[2], bk[3]);
            }
        }
        // P and dS to shared memory (row = query, column = key) for the key-side products.
#pragma unroll
        for (int nt = 0; nt < kBC / 8; ++nt)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int off = swz<kBC>(wRowLocal + g + 8 * r, nt * 8 + 2 * c);
                *reinterpret_cast<uint32_t*>(sP + off) = packPair<T>(s[0][nt][2 * r], s[0][nt][2 * r + 1]);
                *reinterpret_cast<uint32_t*>(sdS + off) = packPair<T>(dp[0][nt][2 * r], dp[0][nt][2 * r + 1]);
            }
        __syncthreads();

        // dV (pass 0: Pᵀ dO) and dK (pass 1: dSᵀ Q · scale) of this warp's 16 keys over the 64
        // queries. The list's padding is at its end, so a warp whose first key is padding has none.
        const int wKeyLocal = warp * 16;
        if (idx[wKeyLocal] >= 0) {
#pragma unroll
            for (int pass = 0; pass < 2; ++pass) {
                const T* aSrc = pass == 0 ? sP : sdS;
                const T* bSrc = pass == 0 ? sdO : sQ;
                float* dst = pass == 0 ? dvg : dkg;
                const float mul = pass == 0 ? 1.f : p.scale;
                float acc[D / 8][4];
#pragma unroll
                for (int dt = 0; dt < D / 8; ++dt) acc[dt][0] = acc[dt][1] = acc[dt][2] = acc[dt][3] = 0.f;
#pragma unroll
                for (int kk = 0; kk < kBq / 16; ++kk) {
                    uint32_t a[4];
                    // A = Pᵀ (16 keys x 16 queries) read transposed from P (row = query).
                    ldmatrixX4Trans(a, smemAddr(aSrc + swz<kBC>(kk * 16 + (lane >> 4) * 8 + (lane & 7),
                                                                wKeyLocal + ((lane >> 3) & 1) * 8)));
#pragma unroll
                    for (int dpair = 0; dpair < D / 16; ++dpair) {
                        uint32_t bb[4];
                        ldmatrixX4Trans(bb, smemAddr(bSrc + swz<D>(kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), dpair * 16 + (lane >> 4) * 8)));
                        mma16816<T>(acc[2 * dpair], a, bb[0], bb[1]);
                        mma16816<T>(acc[2 * dpair + 1], a, bb[2], bb[3]);
                    }
                }
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    const int j = idx[wKeyLocal + g + 8 * r];
                    if (j < 0) continue;
                    float* row = dst + static_cast<int64_t>(j) * D;
#pragma unroll
                    for (int dt = 0; dt < D / 8; ++dt) {
                        atomicAdd(row + dt * 8 + 2 * c, acc[dt][2 * r] * mul);
                        atomicAdd(row + dt * 8 + 2 * c + 1, acc[dt][2 * r + 1] * mul);
                    }
                }
            }
        }
        // du's first term for the tile's keys.
        for (int x = threadIdx.x; x < kBC; x += kThreads) {
            const float v = sDu[x];
            if (v != 0.f) {
                atomicAdd(dug + idx[x], v);
                sDu[x] = 0.f;
            }
        }
        __syncthreads();  // sP, sdS, sDu and this stage are free for the next tiles
    }

    // dQ rows (only this block contributes gathered keys to them; the window part adds later).
    float* dqg = p.dqAccum + rowBase * D;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        if (rowI[r] >= T_) continue;
        float* row = dqg + static_cast<int64_t>(rowI[r]) * D;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt)
            *reinterpret_cast<float2*>(row + dt * 8 + 2 * c) = make_float2(dq[dt][2 * r] * p.scale, dq[dt][2 * r + 1] * p.scale);
    }
    // The mean of gm over each row's free set (0 for rows without one).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const float sum = quadSum(freeSum[r]), count = quadSum(freeCount[r]);
        if (c == 0) {
            sRowC[wRowLocal + g + 8 * r] = count > 0.f ? sum / count : 0.f;
            sRowTau[wRowLocal + g + 8 * r] = tauRow[r];
        }
    }
    __syncthreads();
    // du_j -= Σ_i c_i over the block's rows i whose free set holds j.
    for (int n = threadIdx.x; n < nSel; n += kThreads) {
        const int j = keys[n];
        const float uj = ug[j];
        float sub = 0.f;
        for (int rl = 0; rl < kBq; ++rl) {
            const float cr = sRowC[rl];
            if (cr == 0.f) continue;
            const float mm = uj - sRowTau[rl];
            if (j <= q0 + rl - W && mm > 0.f && mm < 1.f) sub += cr;
        }
        if (sub != 0.f) atomicAdd(dug + j, -sub);
    }
}

template <int D, typename T>
void launchSparseKBwd(const SparseKAttentionBwdParams& p, cudaStream_t stream) {
    const size_t smem = static_cast<size_t>(2 * kBq + 4 * kBC) * D * sizeof(T) + 2 * static_cast<size_t>(kBq) * kBC * sizeof(T) +
                        2 * kBC * (sizeof(int32_t) + sizeof(float)) + (kBC + 2 * kBq) * sizeof(float);
    launchKernel(sparsek_attention_bwd_kernel<D, T>, dim3((p.T + kBq - 1) / kBq, p.B * p.H), kThreads, smem, stream, p,
                 "sparsek attention backward");
}

}  // namespace

void sparsek_attention_bwd_launch(const SparseKAttentionBwdParams& p, cudaStream_t stream) {
    if (p.T <= 0 || p.B * p.H <= 0) return;
    if (p.window < 1) throw std::invalid_argument("sparsek attention backward: window must be >= 1, got " + std::to_string(p.window));
    const bool bf16 = p.elem == ElemType::BF16;
    if (p.D == 64) bf16 ? launchSparseKBwd<64, __nv_bfloat16>(p, stream) : launchSparseKBwd<64, __half>(p, stream);
    else if (p.D == 128)
        bf16 ? launchSparseKBwd<128, __nv_bfloat16>(p, stream) : launchSparseKBwd<128, __half>(p, stream);
    else throw std::invalid_argument("sparsek attention backward: head dim must be 64 or 128, got " + std::to_string(p.D));
}

}  // namespace spanscope::cuda
