// Device helpers shared by the attention kernels: tensor-core MMA (m16n8k16, fp32 accumulate),
// ldmatrix, cp.async and the swizzled shared-memory tile layout. sm_80+ instructions (plain sm_90
// build); no Hopper-only (sm_90a) instructions, so the same code builds for any CUDA target >= 80.
//
// Fragment layouts (PTX ISA, "mma.m16n8k16"), lane = threadIdx.x % 32, g = lane / 4, c = lane % 4:
//   A (16x16, row-major)  a0: (g, 2c..2c+1)  a1: (g+8, 2c..)  a2: (g, 2c+8..)  a3: (g+8, 2c+8..)
//   B (16x8, "col")       b0: (k=2c..2c+1, n=g)  b1: (k=2c+8.., n=g)
//   C (16x8, fp32)        c0,c1: (g, 2c..2c+1)   c2,c3: (g+8, 2c..2c+1)
// Shared-memory tiles are rows of D 2-byte elements; the 16-byte chunk ch of row r is stored at
// chunk ch ^ (r % 8), so the 8 rows an ldmatrix reads hit 8 different bank groups (no conflicts).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace spanscope::cuda {

// Packs two floats into the 2 x 16-bit register of an A fragment.
template <typename T> __device__ __forceinline__ uint32_t packPair(float lo, float hi);
template <> __device__ __forceinline__ uint32_t packPair<__nv_bfloat16>(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}
template <> __device__ __forceinline__ uint32_t packPair<__half>(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

// d += a * b (16x8x16), fp32 accumulators.
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t smemAddr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrixX4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void ldmatrixX4Trans(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

// 16-byte global -> shared copy; reads nothing and writes zeros when !valid.
__device__ __forceinline__ void cpAsync16(uint32_t dst, const void* src, bool valid) {
    int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cpAsyncWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Element offset of (row, col) in a swizzled tile with D elements per row.
template <int D> __device__ __forceinline__ int swz(int row, int col) {
    return row * D + ((((col >> 3) ^ row) & 7) | ((col >> 3) & ~7)) * 8 + (col & 7);
}

// Loads rows [row0, row0 + ROWS) of a (T, D) matrix with row stride `stride` (elements) into a
// swizzled tile; rows at or past T become zeros. All NT threads of the block call it.
template <int ROWS, int D, int NT, typename T>
__device__ __forceinline__ void loadTile(T* tile, const T* base, int64_t stride, int row0, int rowsValid) {
    constexpr int kChunks = ROWS * D / 8;
    static_assert(kChunks % NT == 0, "tile chunks must divide among the threads");
#pragma unroll
    for (int it = 0; it < kChunks / NT; ++it) {
        int idx = it * NT + threadIdx.x;
        int r = idx / (D / 8), ch = idx % (D / 8);
        bool valid = row0 + r < rowsValid;
        const T* src = base + static_cast<int64_t>(valid ? row0 + r : 0) * stride + ch * 8;
        cpAsync16(smemAddr(tile + swz<D>(r, ch * 8)), src, valid);
    }
}

// Loads rows rowIdx[0..ROWS) of a (T, D) matrix into a swizzled tile (a gathered tile: SparseK's
// selected keys); entries at or past rowsValid become zeros. All NT threads of the block call it.
// loadTile's loop with the row taken from rowIdx: one shared version (a row functor) raised the
// spills of the backward and statistics kernels by 8-12 bytes (ptxas, nvcc 13.0), so they stay apart.
template <int ROWS, int D, int NT, typename T>
__device__ __forceinline__ void loadRows(T* tile, const T* base, int64_t stride, const int32_t* rowIdx, int rowsValid) {
    constexpr int kChunks = ROWS * D / 8;
    static_assert(kChunks % NT == 0, "tile chunks must divide among the threads");
#pragma unroll
    for (int it = 0; it < kChunks / NT; ++it) {
        int idx = it * NT + threadIdx.x;
        int r = idx / (D / 8), ch = idx % (D / 8);
        bool valid = r < rowsValid;
        const T* src = base + static_cast<int64_t>(valid ? rowIdx[r] : 0) * stride + ch * 8;
        cpAsync16(smemAddr(tile + swz<D>(r, ch * 8)), src, valid);
    }
}

// SparseK's gathered tile: entries [n0, n0 + ROWS) of a block's ascending key list `keys` (nSel
// long) — their K and V rows into swizzled tiles (zeros past the list), their positions into sIdx
// (-1 past the list) and their scores u into sU (-inf past the list). All NT threads call it.
template <int ROWS, int D, int NT, typename T>
__device__ __forceinline__ void loadGatheredKV(T* sK, T* sV, int32_t* sIdx, float* sU, const T* kBase, int64_t kStride,
                                               const T* vBase, int64_t vStride, const float* u, const int32_t* keys,
                                               int n0, int nSel) {
    const int valid = min(ROWS, nSel - n0);
    for (int r = threadIdx.x; r < ROWS; r += NT) {
        const int j = r < valid ? keys[n0 + r] : -1;
        sIdx[r] = j;
        sU[r] = j >= 0 ? u[j] : -INFINITY;
    }
    loadRows<ROWS, D, NT>(sK, kBase, kStride, keys + n0, valid);
    loadRows<ROWS, D, NT>(sV, vBase, vStride, keys + n0, valid);
}

__device__ __forceinline__ float quadMax(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quadSum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float fastExp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// One warp's scores for its MT*16 query rows against a BC-key tile: s[mt][nt] is the C fragment
// of rows mt*16.. and keys nt*8.. . Q comes from registers (qf, when QREGS) or from the swizzled
// tile sQ (rows wRow.. of the block); K from the swizzled tile sK.
template <int D, int BC, int MT, bool QREGS, typename T>
__device__ __forceinline__ void warpScores(float (&s)[MT][BC / 8][4], const uint32_t (&qf)[QREGS ? MT : 1][QREGS ? D / 16 : 1][4],
                                           const T* sQ, const T* sK, int wRow, int lane) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < BC / 8; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            if constexpr (QREGS) {
#pragma unroll
                for (int x = 0; x < 4; ++x) a[mt][x] = qf[mt][kk][x];
            } else {
                ldmatrixX4(a[mt], smemAddr(sQ + swz<D>(wRow + mt * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
            }
        }
#pragma unroll
        for (int np = 0; np < BC / 16; ++np) {
            uint32_t b[4];
            ldmatrixX4(b, smemAddr(sK + swz<D>(np * 16 + (lane >> 4) * 8 + (lane & 7), kk * 16 + ((lane >> 3) & 1) * 8)));
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                mma16816<T>(s[mt][2 * np], a[mt], b[0], b[1]);
                mma16816<T>(s[mt][2 * np + 1], a[mt], b[2], b[3]);
            }
        }
    }
}

template <int D, int MT, typename T>
__device__ __forceinline__ void loadQFragments(uint32_t (&qf)[MT][D / 16][4], const T* sQ, int wRow, int lane) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
            ldmatrixX4(qf[mt][kk], smemAddr(sQ + swz<D>(wRow + mt * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
}

// Calls f(mt, nt, x, j) for every score of a thread's C-fragment tile (MT m16 tiles x BC keys from
// k0): element x of s[mt][nt] is row g + 8 * (x >> 1) of m16 tile mt and key j; c = lane % 4.
template <int MT, int BC, typename F> __device__ __forceinline__ void forEachScore(int k0, int c, F&& f) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < BC / 8; ++nt)
#pragma unroll
            for (int x = 0; x < 4; ++x) f(mt, nt, x, k0 + nt * 8 + 2 * c + (x & 1));
}

// Sets to -inf the scores of keys outside each row's interval [rowFirst, rowI] (the mask of a tile
// that is not inside every row's interval): s is the C-fragment tile of keys k0.. for this thread's
// rows rowI[mt][r] (g + 8r of m16 tile mt); c = lane % 4.
template <int BC, int MT>
__device__ __forceinline__ void maskOutsideRows(float (&s)[MT][BC / 8][4], int k0, const int (&rowI)[MT][2],
                                                const int (&rowFirst)[MT][2], int c) {
    // Written out rather than with forEachScore: the forward kernels' code stays as measured (the
    // lambda version compiles to different PTX).
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < BC / 8; ++nt)
#pragma unroll
            for (int x = 0; x < 4; ++x) {
                const int j = k0 + nt * 8 + 2 * c + (x & 1);
                const int r = x >> 1;
                if (j > rowI[mt][r] || j < rowFirst[mt][r]) s[mt][nt][x] = -INFINITY;
            }
}

// One step of the forward's online softmax for one warp's MT*16 rows and a BC-key tile: s becomes
// the tile's probabilities (relative to the new running max m), l is rescaled and gets the tile's
// sum, corr is the factor the output rows must be rescaled by (rescaleRows). Exponents are s * sl2
// (base 2), so callers pass scale * log2(e), or 1 for scores already in base-2 units; s is -inf where
// masked; l is this thread's quad-partial sum. A row with no allowed key yet keeps m = -inf; mUse = 0
// then makes its probabilities and its correction exactly 0 instead of NaN.
template <int BC, int MT>
__device__ __forceinline__ void softmaxTile(float (&s)[MT][BC / 8][4], float (&m)[MT][2], float (&l)[MT][2], float sl2,
                                            float (&corr)[MT][2]) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float mx = -INFINITY;
#pragma unroll
            for (int nt = 0; nt < BC / 8; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
            mx = quadMax(mx) * sl2;
            const float mNew = fmaxf(m[mt][r], mx);
            const float mUse = mNew == -INFINITY ? 0.f : mNew;
            corr[mt][r] = fastExp2(m[mt][r] - mUse);
            m[mt][r] = mNew;
            float sum = 0.f;
#pragma unroll
            for (int nt = 0; nt < BC / 8; ++nt)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    float pv = fastExp2(fmaf(s[mt][nt][2 * r + e], sl2, -mUse));
                    s[mt][nt][2 * r + e] = pv;
                    sum += pv;
                }
            l[mt][r] = l[mt][r] * corr[mt][r] + sum;
        }
}

template <int D, int MT> __device__ __forceinline__ void rescaleRows(float (&o)[MT][D / 8][4], const float (&corr)[MT][2]) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
            o[mt][dt][0] *= corr[mt][0];
            o[mt][dt][1] *= corr[mt][0];
            o[mt][dt][2] *= corr[mt][1];
            o[mt][dt][3] *= corr[mt][1];
        }
}

// P's C fragments of key columns 16kk .. 16kk+15 as the A fragment of k-step kk.
template <int BC, int MT, typename T>
__device__ __forceinline__ void packP(uint32_t (&a)[4], const float (&s)[MT][BC / 8][4], int mt, int kk) {
    a[0] = packPair<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
    a[1] = packPair<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
    a[2] = packPair<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
    a[3] = packPair<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
}

// softmaxTile, then O += P V with mma.sync (vt: the swizzled V tile).
template <int D, int BC, int MT, typename T>
__device__ __forceinline__ void onlineSoftmaxPV(float (&s)[MT][BC / 8][4], float (&m)[MT][2], float (&l)[MT][2],
                                                float (&o)[MT][D / 8][4], float sl2, const T* vt, int lane) {
    float corr[MT][2];
    softmaxTile<BC, MT>(s, m, l, sl2, corr);
    rescaleRows<D, MT>(o, corr);
    // O += P V: P's C fragments of key columns 16kk.. become the A fragment of k-step kk.
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) packP<BC, MT, T>(a[mt], s, mt, kk);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
            uint32_t bv[4];
            ldmatrixX4Trans(bv, smemAddr(vt + swz<D>(kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), dp * 16 + (lane >> 4) * 8)));
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                mma16816<T>(o[mt][2 * dp], a[mt], bv[0], bv[1]);
                mma16816<T>(o[mt][2 * dp + 1], a[mt], bv[2], bv[3]);
            }
        }
    }
}

// The forward's epilogue for one warp: normalises its MT*16 rows (global positions wRow0..), writes
// lse (natural log) and stages the rows in the swizzled tile sStage (rows wRowLocal..; the Q tile,
// free by now) to store them to out (row stride outStride) in 16-byte chunks. Rows >= T are dropped.
template <int D, int MT, typename T>
__device__ __forceinline__ void storeWarpRows(const float (&o)[MT][D / 8][4], const float (&m)[MT][2], const float (&l)[MT][2],
                                              int wRow0, T* sStage, int wRowLocal, T* out,
                                              int64_t outStride, float* lse, int T_, int lane) {
    const int g = lane / 4, c = lane % 4;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float lTot = quadSum(l[mt][r]);
            const float inv = lTot > 0.f ? 1.f / lTot : 0.f;
            const int rowLocal = wRowLocal + mt * 16 + g + 8 * r;
#pragma unroll
            for (int dt = 0; dt < D / 8; ++dt)
                *reinterpret_cast<uint32_t*>(sStage + swz<D>(rowLocal, dt * 8 + 2 * c)) =
                    packPair<T>(o[mt][dt][2 * r] * inv, o[mt][dt][2 * r + 1] * inv);
            if (c == 0 && wRow0 + rowLocal - wRowLocal < T_)
                lse[wRow0 + rowLocal - wRowLocal] = (m[mt][r] + __log2f(lTot)) * 0.6931471805599453f;
        }
    __syncwarp();
#pragma unroll
    for (int idx = lane; idx < MT * 16 * D / 8; idx += 32) {
        const int row = idx / (D / 8), ch = idx % (D / 8);
        if (wRow0 + row < T_)
            *reinterpret_cast<uint4*>(out + static_cast<int64_t>(wRow0 + row) * outStride + ch * 8) =
                *reinterpret_cast<const uint4*>(sStage + swz<D>(wRowLocal + row, ch * 8));
    }
}

}  // namespace spanscope::cuda
