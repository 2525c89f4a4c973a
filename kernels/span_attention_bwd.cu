// Span attention backward (FlashAttention-2 style) for full / window / block(+prev) causal masks.
//
// Inputs: q, k, v, dout (B, H, T, D) bf16/fp16, lse (B, H, T) fp32 from the forward and
// delta = rowsum(dout ∘ out) (B, H, T) fp32. Outputs: dk, dv (B, H, T, D) in the input dtype and
// dq accumulated in fp32 (dqAccum, zero-initialised, (B, H, T, D) contiguous).
//
// Algorithm. One thread block (4 warps) owns a tile of kBk = 64 keys [k0, k0+64) of one (b, h);
// each warp owns 16 key rows and keeps their dK and dV accumulators in registers. The block walks
// the query tiles of kBq = 64 queries that can see any of its keys — from the tile holding k0 up to
// the last query that attends key k0+63 (all of T for full masks, k0+63+w-1 for windows, the end of
// the next block for block masks) — so the work follows the attended pairs, as in the forward.
// Per query tile, with Q, dO, lse and delta staged in shared memory:
//   Sᵀ = K Qᵀ and dPᵀ = V dOᵀ on tensor cores (rows: this warp's keys; columns: the tile's queries)
//   Pᵀ = exp(Sᵀ·scale − lse) where the mask allows (i, j), else 0
//   dV += Pᵀ dO,  dSᵀ = Pᵀ ∘ (dPᵀ − delta),  dK += dSᵀ Q       (A operands repacked from C fragments)
//   dQ += dS K · scale: dSᵀ goes through shared memory (read back transposed by ldmatrix.trans), each
//   warp multiplies 16 of the tile's queries by the block's 64 keys and adds into dqAccum (atomics,
//   one per element per key tile that sees the query).
// Keys and queries past T are zero-filled on load; the mask test (j <= i < T) removes them.
#include "kernels/span_attention.h"

#include <stdexcept>
#include <string>

#include "kernels/launch.cuh"
#include "kernels/mma_tile.cuh"

namespace spanscope::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBk = kWarps * 16;  // keys per block
constexpr int kBq = 64;           // queries per step

// Last query that may attend key j (the largest i with mask.allows(i, j)), before clamping to T.
__device__ __forceinline__ int64_t lastQuery(const SpanMask& m, int64_t j, int64_t T) {
    if (m.kind == MaskKind::Window) return j + m.span - 1;
    if (m.kind == MaskKind::Block) return (j / m.span + (m.prevBlock ? 2 : 1)) * m.span - 1;
    return T - 1;
}

template <int D, typename T>
__global__ void __launch_bounds__(kThreads) span_attention_bwd_kernel(const SpanAttentionBwdParams p) {
    extern __shared__ __align__(128) unsigned char smemRaw[];
    T* sK = reinterpret_cast<T*>(smemRaw);  // (kBk, D)
    T* sV = sK + kBk * D;                   // (kBk, D)
    T* sQ = sV + kBk * D;                   // (kBq, D)
    T* sdO = sQ + kBq * D;                  // (kBq, D)
    T* sdS = sdO + kBq * D;                 // (kBk, kBq): dSᵀ of the current step
    float* sLse = reinterpret_cast<float*>(sdS + kBk * kBq);  // (kBq), base-2
    float* sDelta = sLse + kBq;                                // (kBq)

    const int T_ = p.T;
    const int k0 = blockIdx.x * kBk;
    const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H;
    const T* qg = static_cast<const T*>(p.q) + b * p.qs.b + h * p.qs.h;
    const T* kg = static_cast<const T*>(p.k) + b * p.ks.b + h * p.ks.h;
    const T* vg = static_cast<const T*>(p.v) + b * p.vs.b + h * p.vs.h;
    const T* dog = static_cast<const T*>(p.dout) + b * p.dos.b + h * p.dos.h;
    const float* lseg = p.lse + static_cast<int64_t>(bh) * T_;
    const float* deltag = p.delta + static_cast<int64_t>(bh) * T_;
    float* dqg = p.dqAccum + static_cast<int64_t>(bh) * T_ * D;
    const SpanMask mask = p.mask;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, c = lane % 4;
    const int wKeyLocal = warp * 16;

    const int kLast = min(k0 + kBk, T_) - 1;
    const int qBegin = k0 / kBq * kBq;
    const int64_t qLastAttending = lastQuery(mask, kLast, T_);
    const int qEnd = static_cast<int>(qLastAttending < T_ - 1 ? qLastAttending : T_ - 1);  // inclusive

    loadTile<kBk, D, kThreads>(sK, kg, p.ks.t, k0, T_);
    loadTile<kBk, D, kThreads>(sV, vg, p.vs.t, k0, T_);
    cpAsyncCommit();

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
        for (int x = 0; x < 4; ++x) dk[dt][x] = dv[dt][x] = 0.f;
    // The queries that attend key j are exactly [j, lastQuery(j)] for every mask kind: one range
    // test per element (mask.allows() divides in 64 bits for block masks: it made the block-mask
    // backward half as fast as the window one). Keys past T get an empty range.
    int keyJ[2], keyQHi[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        keyJ[r] = k0 + wKeyLocal + g + 8 * r;
        const int64_t last = lastQuery(mask, keyJ[r], T_);
        keyQHi[r] = static_cast<int>(last < T_ - 1 ? last : T_ - 1);
    }
    const float sl2 = p.scale * 1.4426950408889634f;
    const uint32_t noRegs[1][1][4] = {};

    for (int qt0 = qBegin; qt0 <= qEnd; qt0 += kBq) {
        const int qtLast = min(qt0 + kBq, T_) - 1;
        // No query of this tile attends any key of the block: skip (uniform across the block). The
        // tile's query with the smallest first key among those >= k0 is max(qt0, k0).
        if (qtLast < k0 || static_cast<int>(mask.firstKey(max(qt0, k0))) > kLast) continue;
        __syncthreads();  // the previous step is done with sQ, sdO, sdS, sLse, sDelta
        loadTile<kBq, D, kThreads>(sQ, qg, p.qs.t, qt0, T_);
        loadTile<kBq, D, kThreads>(sdO, dog, p.dos.t, qt0, T_);
        cpAsyncCommit();
        for (int x = threadIdx.x; x < kBq; x += kThreads) {
            const int i = qt0 + x;
            sLse[x] = i < T_ ? lseg[i] * 1.4426950408889634f : 0.f;
            sDelta[x] = i < T_ ? deltag[i] : 0.f;
        }
        cpAsyncWait<0>();
        __syncthreads();

        // Sᵀ and dPᵀ: this warp's 16 keys against the tile's 64 queries.
        float s[1][kBq / 8][4], dp[1][kBq / 8][4];
        warpScores<D, kBq, 1, false, T>(s, noRegs, sK, sQ, wKeyLocal, lane);
        warpScores<D, kBq, 1, false, T>(dp, noRegs, sV, sdO, wKeyLocal, lane);
#pragma unroll
        for (int nt = 0; nt < kBq / 8; ++nt)
#pragma unroll
            for (int x = 0; x < 4; ++x) {
                const int col = nt * 8 + 2 * c + (x & 1);
                const int i = qt0 + col;
                const bool ok = i >= keyJ[x >> 1] && i <= keyQHi[x >> 1];
                const float pv = ok ? fastExp2(fmaf(s[0][nt][x], sl2, -sLse[col])) : 0.f;
                s[0][nt][x] = pv;                                  // Pᵀ
                dp[0][nt][x] = pv * (dp[0][nt][x] - sDelta[col]);  // dSᵀ
            }
        // dV += Pᵀ dO and dK += dSᵀ Q: C fragments of query columns 16kk.. are the A fragment of k-step kk.
#pragma unroll
        for (int kk = 0; kk < kBq / 16; ++kk) {
            uint32_t ap[4], as[4];
            ap[0] = packPair<T>(s[0][2 * kk][0], s[0][2 * kk][1]);
            ap[1] = packPair<T>(s[0][2 * kk][2], s[0][2 * kk][3]);
            ap[2] = packPair<T>(s[0][2 * kk + 1][0], s[0][2 * kk + 1][1]);
            ap[3] = packPair<T>(s[0][2 * kk + 1][2], s[0][2 * kk + 1][3]);
            as[0] = packPair<T>(dp[0][2 * kk][0], dp[0][2 * kk][1]);
            as[1] = packPair<T>(dp[0][2 * kk][2], dp[0][2 * kk][3]);
            as[2] = packPair<T>(dp[0][2 * kk + 1][0], dp[0][2 * kk + 1][1]);
            as[3] = packPair<T>(dp[0][2 * kk + 1][2], dp[0][2 * kk + 1][3]);
            // dSᵀ to shared memory for the dQ product (row = key, column = query).
            *reinterpret_cast<uint32_t*>(sdS + swz<kBq>(wKeyLocal + g, kk * 16 + 2 * c)) = as[0];
            *reinterpret_cast<uint32_t*>(sdS + swz<kBq>(wKeyLocal + g + 8, kk * 16 + 2 * c)) = as[1];
            *reinterpret_cast<uint32_t*>(sdS + swz<kBq>(wKeyLocal + g, kk * 16 + 8 + 2 * c)) = as[2];
            *reinterpret_cast<uint32_t*>(sdS + swz<kBq>(wKeyLocal + g + 8, kk * 16 + 8 + 2 * c)) = as[3];
#pragma unroll
            for (int dpair = 0; dpair < D / 16; ++dpair) {
                uint32_t bo[4], bq[4];
                const int row = kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), col = dpair * 16 + (lane >> 4) * 8;
                ldmatrixX4Trans(bo, smemAddr(sdO + swz<D>(row, col)));
                ldmatrixX4Trans(bq, smemAddr(sQ + swz<D>(row, col)));
                mma16816<T>(dv[2 * dpair], ap, bo[0], bo[1]);
                mma16816<T>(dv[2 * dpair + 1], ap, bo[2], bo[3]);
                mma16816<T>(dk[2 * dpair], as, bq[0], bq[1]);
                mma16816<T>(dk[2 * dpair + 1], as, bq[2], bq[3]);
            }
        }
        __syncthreads();  // every warp's dSᵀ rows are in sdS

        // dQ rows [qt0 + 16·warp, +16) += dS K · scale over the block's 64 keys.
        float dq[D / 8][4];
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) dq[dt][0] = dq[dt][1] = dq[dt][2] = dq[dt][3] = 0.f;
        const int wQueryLocal = warp * 16;
#pragma unroll
        for (int kk = 0; kk < kBk / 16; ++kk) {
            uint32_t a[4];
            // A = dS (16 queries x 16 keys) read transposed from dSᵀ: matrix m = lane / 8 covers query
            // rows +8·(m & 1) and key columns +8·(m >> 1).
            ldmatrixX4Trans(a, smemAddr(sdS + swz<kBq>(kk * 16 + (lane >> 4) * 8 + (lane & 7),
                                                       wQueryLocal + ((lane >> 3) & 1) * 8)));
#pragma unroll
            for (int dpair = 0; dpair < D / 16; ++dpair) {
                uint32_t bk[4];
                ldmatrixX4Trans(bk, smemAddr(sK + swz<D>(kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), dpair * 16 + (lane >> 4) * 8)));
                mma16816<T>(dq[2 * dpair], a, bk[0], bk[1]);
                mma16816<T>(dq[2 * dpair + 1], a, bk[2], bk[3]);
            }
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int i = qt0 + wQueryLocal + g + 8 * r;
            if (i >= T_) continue;
            float* row = dqg + static_cast<int64_t>(i) * D;
#pragma unroll
            for (int dt = 0; dt < D / 8; ++dt) {
                atomicAdd(row + dt * 8 + 2 * c, dq[dt][2 * r] * p.scale);
                atomicAdd(row + dt * 8 + 2 * c + 1, dq[dt][2 * r + 1] * p.scale);
            }
        }
    }

    // dK (times scale) and dV of this warp's 16 keys.
    T* dkg = static_cast<T*>(p.dk) + static_cast<int64_t>(bh) * T_ * D;
    T* dvg = static_cast<T*>(p.dv) + static_cast<int64_t>(bh) * T_ * D;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int j = keyJ[r];
        if (j >= T_) continue;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
            *reinterpret_cast<uint32_t*>(dkg + static_cast<int64_t>(j) * D + dt * 8 + 2 * c) =
                packPair<T>(dk[dt][2 * r] * p.scale, dk[dt][2 * r + 1] * p.scale);
            *reinterpret_cast<uint32_t*>(dvg + static_cast<int64_t>(j) * D + dt * 8 + 2 * c) =
                packPair<T>(dv[dt][2 * r], dv[dt][2 * r + 1]);
        }
    }
}

template <int D, typename T>
void launchBwd(const SpanAttentionBwdParams& p, cudaStream_t stream) {
    const size_t smem = static_cast<size_t>(2 * kBk + 2 * kBq) * D * sizeof(T) + static_cast<size_t>(kBk) * kBq * sizeof(T) +
                        2 * kBq * sizeof(float);
    launchKernel(span_attention_bwd_kernel<D, T>, dim3((p.T + kBk - 1) / kBk, p.B * p.H), kThreads, smem, stream, p,
                 "span attention backward");
}

}  // namespace

void span_attention_bwd_launch(const SpanAttentionBwdParams& p, cudaStream_t stream) {
    if (p.T <= 0 || p.B * p.H <= 0) return;
    const bool bf16 = p.elem == ElemType::BF16;
    if (p.D == 64) bf16 ? launchBwd<64, __nv_bfloat16>(p, stream) : launchBwd<64, __half>(p, stream);
    else if (p.D == 128) bf16 ? launchBwd<128, __nv_bfloat16>(p, stream) : launchBwd<128, __half>(p, stream);
    else throw std::invalid_argument("span attention backward: head dim must be 64 or 128, got " + std::to_string(p.D));
}

}  // namespace spanscope::cuda
