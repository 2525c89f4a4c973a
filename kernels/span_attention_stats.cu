// Attention statistics without the N x N matrix: a second pass after the forward.
//
// q, k: (1, H, T, D) bf16/fp16, lse: (H, T) fp32 -> sums into SpanStatsParams' outputs.
//
// Algorithm. Same tiling as the forward (a block owns 128 queries of one head; 4 warps x 32 rows;
// only key tiles in [firstKey(q0), q0+128) are visited; the element mask only on boundary tiles).
// Each tile's scores are recomputed on tensor cores and turned into probabilities with the stored
// row log-sum-exp, p = 2^(s * scale * log2 e - lse * log2 e), so no running maximum or rescaling is
// needed and every sum below is final. Per element: entropy term -p log p, distance p (i - j),
// beyond-span and sink indicators. Per-row sums stay in registers until the end (then one atomic
// per row); per-head sums are reduced over the block and added once in fp64.
// Distance bins and the pooled map need a bin index per element; both bin maps are monotone, so
// a warp's 32 rows x 64 keys touch only a few bins. Far from the diagonal the warp's tile lies in one
// distance bin and (for T/P >= 64) one pooled cell: its whole mass goes there with one shuffle
// reduction and one atomic. Otherwise distance bins are summed per bin over the warp's range
// (at most ~8 bins, near the diagonal), and pooled cells by one tensor-core product of P with a
// one-hot key-bin matrix (up to 16 key bins per tile); bins narrower than 4 keys (zoomed regions)
// fall back to one atomic per element. Exact rows are written by the warps that own them.
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
constexpr int kBc = 64;
constexpr int kMaxWarpCells = 16;  // pooled cells per warp tile before falling back to per-element atomics

__device__ __forceinline__ int distBin(int d) { return d <= 0 ? 0 : 32 - __clz(d); }
// Bin of position x in the region [lo, lo + len) with n bins (callers pass x inside the region):
// floor((x - lo) * n / len). (x - lo) * n < 2^31 (checked by the op), so a float quotient is off by
// at most one and an exact integer test fixes it (64-bit division is a long subroutine).
__device__ __forceinline__ int floorDiv(int t, int len, float invLen) {
    int b = __float2int_rz(static_cast<float>(t) * invLen);
    if (b * len > t) --b;
    else if ((b + 1) * len <= t) ++b;
    return b;
}
__device__ __forceinline__ int regionBin(int x, int lo, int len, int n, float invLen) {
    return floorDiv((x - lo) * n, len, invLen);
}
// First position of bin b: lo + ceil(b * len / n) = lo + floor((b * len + n - 1) / n).
__device__ __forceinline__ int regionBinStart(int b, int lo, int len, int n, float invN) {
    return lo + floorDiv(b * len + n - 1, n, invN);
}

// 1 / (number of region positions in row bin qb): the pooled map holds means over a bin's queries.
__device__ __forceinline__ float rowBinScale(int qb, int lenQ, int Pq, float invPq) {
    const int n = floorDiv((qb + 1) * lenQ + Pq - 1, Pq, invPq) - floorDiv(qb * lenQ + Pq - 1, Pq, invPq);
    return 1.f / static_cast<float>(max(n, 1));
}

// Pooled cells of one warp tile on the tensor cores: C = P * K1, with K1 (keys x 16) the one-hot
// key-bin matrix built from sKeyBin, so C[row][b] is the row's mass in key bin kbLo + b. P is split
// into fp16 hi + lo parts (two MMAs) to keep ~fp32 accuracy. Then rows are summed per row bin
// (shuffles over the 8 row groups of the warp) and each cell gets one atomic.
template <int MT, int BC>
__device__ __forceinline__ void pooledTile(float* pooledH, const float (&s)[MT][BC / 8][4], const int8_t* keyBin,
                                           const int (&rowQb)[MT][2], int qbLo, int qbHi, int kbLo, int nkb, int Pk,
                                           int lenQ, int Pq, float invPq, int lane) {
    const int g = lane / 4, c = lane % 4;
    float acc[MT][2][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nn = 0; nn < 2; ++nn) acc[mt][nn][0] = acc[mt][nn][1] = acc[mt][nn][2] = acc[mt][nn][3] = 0.f;
    auto one = [](bool lo, bool hi) { return (lo ? 0x3C00u : 0u) | (hi ? 0x3C000000u : 0u); };  // fp16 1.0 pairs
    auto split = [](float x, float y, uint32_t& hi, uint32_t& lo) {
        __half2 h = __floats2half2_rn(x, y);
        float2 hf = __half22float2(h);
        __half2 l = __floats2half2_rn(x - hf.x, y - hf.y);
        hi = *reinterpret_cast<uint32_t*>(&h);
        lo = *reinterpret_cast<uint32_t*>(&l);
    };
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
        const int k = kk * 16 + 2 * c;
        const int b00 = keyBin[k], b01 = keyBin[k + 1], b10 = keyBin[k + 8], b11 = keyBin[k + 9];
        uint32_t bf[2][2];
#pragma unroll
        for (int nn = 0; nn < 2; ++nn) {
            const int n = g + 8 * nn;
            bf[nn][0] = one(b00 == n, b01 == n);
            bf[nn][1] = one(b10 == n, b11 == n);
        }
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            uint32_t hi[4], lo[4];
            split(s[mt][2 * kk][0], s[mt][2 * kk][1], hi[0], lo[0]);
            split(s[mt][2 * kk][2], s[mt][2 * kk][3], hi[1], lo[1]);
            split(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1], hi[2], lo[2]);
            split(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3], hi[3], lo[3]);
#pragma unroll
            for (int nn = 0; nn < 2; ++nn) {
                mma16816<__half>(acc[mt][nn], hi, bf[nn][0], bf[nn][1]);
                mma16816<__half>(acc[mt][nn], lo, bf[nn][0], bf[nn][1]);
            }
        }
    }
    for (int qb = qbLo; qb <= qbHi; ++qb) {
        const float scale = rowBinScale(qb, lenQ, Pq, invPq);
        float v[2][2] = {{0.f, 0.f}, {0.f, 0.f}};
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int r = 0; r < 2; ++r)
                if (rowQb[mt][r] == qb)
#pragma unroll
                    for (int nn = 0; nn < 2; ++nn) {
                        v[nn][0] += acc[mt][nn][2 * r];
                        v[nn][1] += acc[mt][nn][2 * r + 1];
                    }
#pragma unroll
        for (int nn = 0; nn < 2; ++nn)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                float x = v[nn][e];
                x += __shfl_xor_sync(0xffffffffu, x, 4);
                x += __shfl_xor_sync(0xffffffffu, x, 8);
                x += __shfl_xor_sync(0xffffffffu, x, 16);
                const int off = nn * 8 + 2 * c + e;
                if (g == 0 && off < nkb && x != 0.f) atomicAdd(&pooledH[static_cast<int64_t>(qb) * Pk + kbLo + off], x * scale);
            }
    }
}

template <int D, typename T>
__global__ void __launch_bounds__(kThreads) span_attention_stats_kernel(const SpanStatsParams p) {
    constexpr bool QREGS = D == 64;
    extern __shared__ __align__(128) unsigned char smemRaw[];
    T* sQ = reinterpret_cast<T*>(smemRaw);
    T* sK = sQ + kBr * D;
    __shared__ float sBins[kStatsDistanceBins];
    __shared__ float sRed[4][kWarps];
    __shared__ int8_t sKeyBin[kBc];  // pooled key bin of each key of the tile, minus the tile's first; -1: outside

    const int T_ = p.T;
    const bool pooling = p.Pq > 0 && p.Pk > 0;
    const int lenQ = p.mapQ1 - p.mapQ0, lenK = p.mapK1 - p.mapK0;
    const float invLenQ = 1.f / static_cast<float>(lenQ), invLenK = 1.f / static_cast<float>(lenK);
    const float invPk = pooling ? 1.f / static_cast<float>(p.Pk) : 0.f;
    const float invPq = pooling ? 1.f / static_cast<float>(p.Pq) : 0.f;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kBr;
    const int h = blockIdx.y;
    const T* qg = static_cast<const T*>(p.q) + h * p.qs.h;
    const T* kg = static_cast<const T*>(p.k) + h * p.ks.h;
    const SpanMask mask = p.mask;

    const int qLast = min(q0 + kBr, T_) - 1;
    const int kBegin = static_cast<int>(mask.firstKey(q0)) / kBc * kBc;
    const int nTiles = (qLast + 1 - kBegin + kBc - 1) / kBc;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, c = lane % 4;
    const int wRowLocal = warp * kMT * 16;
    const int wRow0 = q0 + wRowLocal;
    const int wRowLast = min(wRow0 + kMT * 16, T_) - 1;
    const bool wFullRows = wRow0 + kMT * 16 <= T_;
    const int wFirstLo = wRowLast >= wRow0 ? static_cast<int>(mask.firstKey(wRow0)) : 0;
    const int wFirstHi = wRowLast >= wRow0 ? static_cast<int>(mask.firstKey(wRowLast)) : 0;
    // Pooled row bins of this warp's rows inside the map region (empty range: none).
    const int wMapLo = max(wRow0, p.mapQ0), wMapHi = min(wRowLast, p.mapQ1 - 1);
    const int qbLo = pooling && wMapLo <= wMapHi ? regionBin(wMapLo, p.mapQ0, lenQ, p.Pq, invLenQ) : 0;
    const int qbHi = pooling && wMapLo <= wMapHi ? regionBin(wMapHi, p.mapQ0, lenQ, p.Pq, invLenQ) : -1;
    const int beyond = p.beyondSpan > 0 ? p.beyondSpan : 0x7fffffff;

    if (threadIdx.x < kStatsDistanceBins) sBins[threadIdx.x] = 0.f;
    loadTile<kBr, D, kThreads>(sQ, qg, p.qs.t, q0, T_);
    cpAsyncCommit();
    loadTile<kBc, D, kThreads>(sK, kg, p.ks.t, kBegin, T_);
    cpAsyncCommit();

    const float sl2 = p.scale * 1.4426950408889634f;
    int rowI[kMT][2], rowFirst[kMT][2], rowQb[kMT][2];
    float rowLse2[kMT][2], rowEnt[kMT][2], rowBeyond[kMT][2];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int i = wRow0 + mt * 16 + g + 8 * r;
            rowI[mt][r] = i;
            rowFirst[mt][r] = static_cast<int>(mask.firstKey(i));
            rowLse2[mt][r] = i < T_ ? p.lse[static_cast<int64_t>(h) * T_ + i] * 1.4426950408889634f : 0.f;
            rowQb[mt][r] = pooling && i >= p.mapQ0 && i < p.mapQ1 ? regionBin(i, p.mapQ0, lenQ, p.Pq, invLenQ) : -1;
            rowEnt[mt][r] = rowBeyond[mt][r] = 0.f;
        }
    float accDist = 0.f, accSink = 0.f;
    // Does this warp own a query whose exact row is wanted?
    const bool warpHasRows = p.rowSlot != nullptr &&
        __any_sync(0xffffffffu, wRow0 + lane < T_ && lane < kMT * 16 && p.rowSlot[wRow0 + lane] >= 0);
    uint32_t qf[QREGS ? kMT : 1][QREGS ? D / 16 : 1][4];

    for (int it = 0; it < nTiles; ++it) {
        const int k0 = kBegin + it * kBc;
        const int stage = it & 1;
        if (it + 1 < nTiles) loadTile<kBc, D, kThreads>(sK + (stage ^ 1) * kBc * D, kg, p.ks.t, k0 + kBc, T_);
        cpAsyncCommit();
        // Key bins of this tile (read after the barrier; the last reads were before the previous one).
        if (pooling && threadIdx.x < kBc) {
            const int j = k0 + threadIdx.x, jFirst = max(k0, p.mapK0);
            sKeyBin[threadIdx.x] = j >= p.mapK0 && j < p.mapK1 && j < T_ && jFirst < p.mapK1
                ? static_cast<int8_t>(min(regionBin(j, p.mapK0, lenK, p.Pk, invLenK) - regionBin(jFirst, p.mapK0, lenK, p.Pk, invLenK), 127))
                : int8_t{-1};
        }
        cpAsyncWait<1>();
        __syncthreads();
        if constexpr (QREGS) {
            if (it == 0) loadQFragments<D, kMT, T>(qf, sQ, wRowLocal, lane);
        }
        const bool live = wRowLast >= wRow0 && k0 <= wRowLast && k0 + kBc - 1 >= wFirstLo;
        if (live) {
            float s[kMT][kBc / 8][4];
            warpScores<D, kBc, kMT, QREGS, T>(s, qf, sQ, sK + stage * kBc * D, wRowLocal, lane);
            const bool needMask = !(k0 + kBc - 1 <= wRow0 && wFirstHi <= k0 && wFullRows);
            // p = 2^z with z = log2 p; p replaces s. Per element only what cannot be done per row:
            // the row's tile mass, sum p*z (entropy) and sum p*offset (distance: sum p*(i - j)
            // = i*mass - sum p*j, and j = k0 + 2c + offset with offset a compile-time constant).
            float tileMass[kMT][2], tileEnt[kMT][2], tileOff[kMT][2];
#pragma unroll
            for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                for (int r = 0; r < 2; ++r) tileMass[mt][r] = tileEnt[mt][r] = tileOff[mt][r] = 0.f;
#pragma unroll
            for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
                    for (int x = 0; x < 4; ++x) {
                        const int r = x >> 1;
                        const float z = fmaf(s[mt][nt][x], sl2, -rowLse2[mt][r]);
                        float pv = fastExp2(z);
                        if (needMask) {
                            const int j = k0 + nt * 8 + 2 * c + (x & 1);
                            if (j > rowI[mt][r] || j < rowFirst[mt][r] || rowI[mt][r] >= T_) pv = 0.f;
                        }
                        s[mt][nt][x] = pv;
                        tileMass[mt][r] += pv;
                        tileEnt[mt][r] = fmaf(pv, z, tileEnt[mt][r]);
                        tileOff[mt][r] = fmaf(pv, static_cast<float>(nt * 8 + (x & 1)), tileOff[mt][r]);
                    }
            float warpTileMass = 0.f;
#pragma unroll
            for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    const int i = rowI[mt][r];
                    rowEnt[mt][r] -= tileEnt[mt][r];
                    accDist += tileMass[mt][r] * static_cast<float>(i - k0 - 2 * c) - tileOff[mt][r];
                    warpTileMass += tileMass[mt][r];
                    // Beyond span: d >= beyond  <=>  j <= i - beyond.
                    const int cut = i - beyond;
                    if (cut >= k0 + kBc - 1) {
                        rowBeyond[mt][r] += tileMass[mt][r];
                    } else if (cut >= k0) {
#pragma unroll
                        for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
                            for (int e = 0; e < 2; ++e)
                                if (k0 + nt * 8 + 2 * c + e <= cut) rowBeyond[mt][r] += s[mt][nt][2 * r + e];
                    }
                }
            if (warpHasRows) {
#pragma unroll
                for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                    for (int r = 0; r < 2; ++r) {
                        const int i = rowI[mt][r];
                        const int slot = i < T_ ? p.rowSlot[i] : -1;
                        if (slot < 0) continue;
                        float* dst = p.rows + (static_cast<int64_t>(slot) * gridDim.y + h) * T_;
#pragma unroll
                        for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
                            for (int e = 0; e < 2; ++e) {
                                const int j = k0 + nt * 8 + 2 * c + e;
                                if (j < T_) dst[j] = s[mt][nt][2 * r + e];
                            }
                    }
            }
            if (k0 < p.sinkTokens) {
#pragma unroll
                for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                    for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
                        for (int x = 0; x < 4; ++x)
                            if (k0 + nt * 8 + 2 * c + (x & 1) < p.sinkTokens) accSink += s[mt][nt][x];
            }
            // Distance bins over the warp's (uniform) range; far from the diagonal it is one bin,
            // which takes the warp's whole tile mass.
            const int kLastValid = min(k0 + kBc, T_) - 1;
            const int bLo = distBin(max(wRow0 - kLastValid, 0)), bHi = distBin(wRowLast - k0);
            float warpMassSum = -1.f;  // the warp's tile mass, once reduced
            if (bLo == bHi) {
                warpMassSum = warpSum(warpTileMass);
                if (lane == 0 && warpMassSum != 0.f) atomicAdd(&sBins[bLo], warpMassSum);
            } else {
                for (int bin = bLo; bin <= bHi; ++bin) {
                    const int lo = bin == 0 ? 0 : 1 << (bin - 1), hi = bin == 0 ? 1 : 1 << bin;
                    float part = 0.f;
#pragma unroll
                    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                        for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
                            for (int x = 0; x < 4; ++x) {
                                const int d = rowI[mt][x >> 1] - (k0 + nt * 8 + 2 * c + (x & 1));
                                if (d >= lo && d < hi) part += s[mt][nt][x];
                            }
                    part = warpSum(part);
                    if (lane == 0 && part != 0.f) atomicAdd(&sBins[bin], part);
                }
            }
            // Pooled map: the cells of this warp's rows x the tile's keys inside the region.
            const int kMapLo = max(k0, p.mapK0), kMapHi = min(kLastValid, p.mapK1 - 1);
            if (qbLo <= qbHi && kMapLo <= kMapHi) {
                const int kbLo = regionBin(kMapLo, p.mapK0, lenK, p.Pk, invLenK), kbHi = regionBin(kMapHi, p.mapK0, lenK, p.Pk, invLenK);
                float* pooledH = p.pooled + static_cast<int64_t>(h) * p.Pq * p.Pk;
                const bool allRowsInRegion = wRow0 >= p.mapQ0 && wRowLast < p.mapQ1 && wFullRows;
                if (qbLo == qbHi && kbLo == kbHi && allRowsInRegion && kMapLo == k0 && kMapHi == k0 + kBc - 1) {
                    // One cell takes the warp's whole tile.
                    if (warpMassSum < 0.f) warpMassSum = warpSum(warpTileMass);
                    if (lane == 0 && warpMassSum != 0.f)
                        atomicAdd(&pooledH[static_cast<int64_t>(qbLo) * p.Pk + kbLo], warpMassSum * rowBinScale(qbLo, lenQ, p.Pq, invPq));
                } else if (kbHi - kbLo < 16) {
                    pooledTile<kMT, kBc>(pooledH, s, sKeyBin, rowQb, qbLo, qbHi, kbLo, kbHi - kbLo + 1, p.Pk, lenQ, p.Pq, invPq, lane);
                } else if ((qbHi - qbLo + 1) * (kbHi - kbLo + 1) <= kMaxWarpCells) {
                    for (int qb = qbLo; qb <= qbHi; ++qb)
                        for (int kb = kbLo; kb <= kbHi; ++kb) {
                            const int jLo = max(regionBinStart(kb, p.mapK0, lenK, p.Pk, invPk), kMapLo);
                            const int jHi = min(regionBinStart(kb + 1, p.mapK0, lenK, p.Pk, invPk), kMapHi + 1);
                            float part = 0.f;
#pragma unroll
                            for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                                for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
                                    for (int x = 0; x < 4; ++x) {
                                        const int j = k0 + nt * 8 + 2 * c + (x & 1);
                                        if (rowQb[mt][x >> 1] == qb && j >= jLo && j < jHi) part += s[mt][nt][x];
                                    }
                            part = warpSum(part);
                            if (lane == 0 && part != 0.f)
                                atomicAdd(&pooledH[static_cast<int64_t>(qb) * p.Pk + kb], part * rowBinScale(qb, lenQ, p.Pq, invPq));
                        }
                } else {
#pragma unroll
                    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                        for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
                            for (int x = 0; x < 4; ++x) {
                                const int j = k0 + nt * 8 + 2 * c + (x & 1);
                                const float pv = s[mt][nt][x];
                                const int qb = rowQb[mt][x >> 1];
                                if (pv != 0.f && qb >= 0 && j >= kMapLo && j <= kMapHi)
                                    atomicAdd(&pooledH[static_cast<int64_t>(qb) * p.Pk + regionBin(j, p.mapK0, lenK, p.Pk, invLenK)],
                                              pv * rowBinScale(qb, lenQ, p.Pq, invPq));
                            }
                }
            }
        }
        __syncthreads();
    }

    // Per-query sums (head means) and per-head totals.
    float ent = 0.f, bey = 0.f;
    const float invH = 1.f / static_cast<float>(gridDim.y);
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float e = quadSum(rowEnt[mt][r]) * 0.6931471805599453f;  // log2 -> nats
            const float bq = quadSum(rowBeyond[mt][r]);
            if (c == 0 && rowI[mt][r] < T_) {
                atomicAdd(&p.entropyPerQuery[rowI[mt][r]], e * invH);
                if (p.beyondSpan > 0) atomicAdd(&p.beyondPerQuery[rowI[mt][r]], bq * invH);
                ent += e;
                bey += bq;
            }
        }
    const float sums[4] = {warpSum(ent), warpSum(accDist), warpSum(bey), warpSum(accSink)};
    if (lane == 0)
        for (int x = 0; x < 4; ++x) sRed[x][warp] = sums[x];
    __syncthreads();
    if (threadIdx.x < 4) {
        double tot = 0;
        for (int w = 0; w < kWarps; ++w) tot += sRed[threadIdx.x][w];
        double* dst[4] = {p.entropy, p.distance, p.beyondMass, p.sinkMass};
        if (threadIdx.x != 2 || p.beyondSpan > 0) atomicAdd(dst[threadIdx.x] + h, tot);
    }
    if (threadIdx.x < kStatsDistanceBins && sBins[threadIdx.x] != 0.f)
        atomicAdd(&p.binMass[h * kStatsDistanceBins + threadIdx.x], static_cast<double>(sBins[threadIdx.x]));
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
    const bool bf16 = p.elem == ElemType::BF16;
    if (p.D == 64) bf16 ? launchStats<64, __nv_bfloat16>(p, stream) : launchStats<64, __half>(p, stream);
    else if (p.D == 128) bf16 ? launchStats<128, __nv_bfloat16>(p, stream) : launchStats<128, __half>(p, stream);
    else throw std::invalid_argument("span attention stats: head dim must be 64 or 128, got " + std::to_string(p.D));
}

}  // namespace spanscope::cuda
