// The statistics pass's per-warp work on one tile of scores, shared by its two kernels: the
// mma.sync one (span_attention_stats.cu: 4 warps x 32 rows, 64-key tiles) and the Hopper one
// (span_attention_stats_sm90.cu: warpgroups of 4 warps x 16 rows, 64- or 128-key tiles from wgmma).
// A warp owns MT*16 consecutive query rows; s is the C-fragment tile of scores of those rows against
// BC keys k0.. (mma_tile.cuh's layout: s[mt][nt][x] is row mt*16 + g + 8*(x>>1), key 8*nt + 2c + (x&1)).
//
// Per tile, with the stored row log-sum-exp instead of a running maximum (every sum is final):
// p = 2^(s * scale * log2 e - lse * log2 e). Per element only what cannot be done per row: the row's
// tile mass, sum p*z (entropy) and sum p*offset (distance: sum p*(i - j) = i*mass - sum p*j).
// Per-row sums stay in registers until finish(); distance bins are per-lane sums in the warp's own
// shared memory until finish(), which adds them to the block's sBins and returns the other
// per-head sums for the block reduction.
// Distance bins and the pooled map need a bin index per element; both bin maps are monotone, so a
// warp's rows x BC keys touch only a few bins. Far from the diagonal the warp's tile lies in one
// distance bin: its whole mass goes there. Near it, bins are differences of tail masses (mass at
// distance >= 2^k), each from prefix sums over whole 8-key groups plus the few groups a row's cut
// falls in. Pooled cells, cheapest first: the whole tile in one cell;
// rows in one row bin and every 8-key group inside one key bin (per-group sums over the warp, one
// atomic per cell); up to 16 key bins by a tensor-core product of P with a one-hot key-bin matrix; a few cells
// one by one; else (bins narrower than a few keys: zoomed regions) one atomic per element.
// The key bins of a tile come from the caller (keyBin[x] = bin of key k0 + x minus the bin of the
// tile's first key in the region, -1 outside): keyBinOffset() computes one.
#pragma once

#include "kernels/mma_tile.cuh"
#include "kernels/span_attention.h"

namespace spanscope::cuda {

constexpr int kStatsMaxWarpCells = 16;  // pooled cells per warp tile before falling back to per-element atomics

__device__ __forceinline__ int distBin(int d) { return d <= 0 ? 0 : 32 - __clz(d); }
// floor(t / len) for 0 <= t < 2^31 (checked by the op): the float quotient, then one exact integer
// step each way (64-bit division is a long subroutine). Exact while the float quotient is off by at
// most one, i.e. for quotients below ~2^22: bins and region positions here (below 2^23 tokens,
// checked by the op); a row bin's size in rowBinScale for regions over ~4M tokens with few bins can
// be off by one (a ~1e-6 relative error of that row bin's scale).
__device__ __forceinline__ int floorDiv(int t, int len, float invLen) {
    int b = __float2int_rz(static_cast<float>(t) * invLen);
    if (b * len > t) --b;
    else if ((b + 1) * len <= t) ++b;
    return b;
}
// Bin of position x in the region [lo, lo + len) with n bins (callers pass x inside the region):
// floor((x - lo) * n / len).
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
    return __frcp_rn(static_cast<float>(max(n, 1)));
}

// Reduce-scatter over the warp: each lane enters with N = 2 * HALF partial values; every step
// (lane bit O, then O/2, ...) keeps half of them, adding the partner lane's copy. Afterwards v[0]
// of lane l is value l / (32 / N) summed over the N lanes that share l's low bits (l mod 32 / N);
// xor shuffles over those low bits then give the warp's sum. A template, so every loop is unrolled and v
// stays in registers.
template <int HALF, int O, int N>
__device__ __forceinline__ void reduceScatter(float (&v)[N], int lane) {
    if constexpr (HALF >= 1) {
        const bool upper = (lane & O) != 0;
#pragma unroll
        for (int i = 0; i < HALF; ++i) {
            const float send = upper ? v[i] : v[i + HALF];
            v[i] = (upper ? v[i + HALF] : v[i]) + __shfl_xor_sync(0xffffffffu, send, O);
        }
        reduceScatter<HALF / 2, O / 2, N>(v, lane);
    }
}

// The pooled map's region and reciprocals, the same for every warp of the pass.
struct StatsRegion {
    bool pooling;
    int lenQ, lenK;
    float invLenQ, invLenK, invPq, invPk;
    __device__ explicit StatsRegion(const SpanStatsParams& p)
        : pooling(p.Pq > 0 && p.Pk > 0), lenQ(p.mapQ1 - p.mapQ0), lenK(p.mapK1 - p.mapK0),
          invLenQ(1.f / static_cast<float>(p.mapQ1 - p.mapQ0)), invLenK(1.f / static_cast<float>(p.mapK1 - p.mapK0)),
          invPq(p.Pq > 0 ? 1.f / static_cast<float>(p.Pq) : 0.f), invPk(p.Pk > 0 ? 1.f / static_cast<float>(p.Pk) : 0.f) {}
    __device__ int keyBin(const SpanStatsParams& p, int j) const { return regionBin(j, p.mapK0, lenK, p.Pk, invLenK); }
};

// keyBin entry of key j in the tile starting at k0 (see the top).
__device__ __forceinline__ int8_t keyBinOffset(const SpanStatsParams& p, const StatsRegion& reg, int j, int k0) {
    const int jFirst = max(k0, p.mapK0);
    return j >= p.mapK0 && j < p.mapK1 && j < p.T && jFirst < p.mapK1
        ? static_cast<int8_t>(min(reg.keyBin(p, j) - reg.keyBin(p, jFirst), 127))
        : int8_t{-1};
}

// Pooled cells of one warp tile on the tensor cores: C = P * K1, with K1 (keys x 16) the one-hot
// key-bin matrix built from keyBin, so C[row][b] is the row's mass in key bin kbLo + b. P (<= 1) is
// scaled by 2^15 (exact) and split into fp16 hi + lo parts (two MMAs): about 2^-22 relative error per
// element for p down to 2^-29 (unscaled, the hi part of p < 2^-14 is an fp16 subnormal and the lo part
// rounds away: ~3 % error at p = 1e-6). Then rows are summed per row bin (shuffles over the 8 row
// groups of the warp) and each cell gets one atomic, scaled back.
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
        x *= 32768.f;
        y *= 32768.f;
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
        const float scale = rowBinScale(qb, lenQ, Pq, invPq) * (1.f / 32768.f);
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

// One warp's statistics state over the pass: its rows' running sums and the warp's constants.
template <int MT> struct StatsWarp {
    int rowI[MT][2], rowFirst[MT][2], rowQb[MT][2];
    float rowLse2[MT][2], rowEnt[MT][2], rowBeyond[MT][2];
    float accDist, accSink;
    int row0, rowLast, firstLo, firstHi, qbLo, qbHi, beyond;
    float scaleLo;  // rowBinScale of row bin qbLo
    bool fullRows, hasRows;
    // Distance-bin sums: this lane's partial sums in laneBins[bin * 32 + lane] (the warp's own
    // kStatsDistanceBins x 32 floats of shared memory: no atomics, no reductions per tile), with the
    // bin of the last one-bin tiles cached in registers (curBin, curAcc).
    float* laneBins;
    int curBin;
    float curAcc;

    // Rows wRow0 .. wRow0 + MT*16 - 1 of head h (rows >= T are padding: they add nothing); binSlots:
    // the warp's kStatsDistanceBins * 32 floats of shared memory.
    __device__ __forceinline__ void init(const SpanStatsParams& p, const StatsRegion& reg, int h, int wRow0, float* binSlots, int lane) {
        const int T_ = p.T, g = lane / 4;
        laneBins = binSlots;
#pragma unroll
        for (int b = 0; b < kStatsDistanceBins; ++b) laneBins[b * 32 + lane] = 0.f;
        curBin = -1;
        curAcc = 0.f;
        row0 = wRow0;
        rowLast = min(wRow0 + MT * 16, T_) - 1;
        fullRows = wRow0 + MT * 16 <= T_;
        firstLo = rowLast >= row0 ? static_cast<int>(p.mask.firstKey(row0)) : 0;
        firstHi = rowLast >= row0 ? static_cast<int>(p.mask.firstKey(rowLast)) : 0;
        // Pooled row bins of this warp's rows inside the map region (empty range: none).
        const int mapLo = max(row0, p.mapQ0), mapHi = min(rowLast, p.mapQ1 - 1);
        qbLo = reg.pooling && mapLo <= mapHi ? regionBin(mapLo, p.mapQ0, reg.lenQ, p.Pq, reg.invLenQ) : 0;
        qbHi = reg.pooling && mapLo <= mapHi ? regionBin(mapHi, p.mapQ0, reg.lenQ, p.Pq, reg.invLenQ) : -1;
        scaleLo = qbLo <= qbHi ? rowBinScale(qbLo, reg.lenQ, p.Pq, reg.invPq) : 0.f;
        beyond = p.beyondSpan > 0 ? p.beyondSpan : 0x7fffffff;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int i = wRow0 + mt * 16 + g + 8 * r;
                rowI[mt][r] = i;
                rowFirst[mt][r] = static_cast<int>(p.mask.firstKey(i));
                rowLse2[mt][r] = i < T_ ? p.lse[static_cast<int64_t>(h) * T_ + i] * 1.4426950408889634f : 0.f;
                rowQb[mt][r] = reg.pooling && i >= p.mapQ0 && i < p.mapQ1 ? regionBin(i, p.mapQ0, reg.lenQ, p.Pq, reg.invLenQ) : -1;
                rowEnt[mt][r] = rowBeyond[mt][r] = 0.f;
            }
        accDist = accSink = 0.f;
        // Does this warp own a query whose exact row is wanted?
        hasRows = p.rowSlot != nullptr &&
            __any_sync(0xffffffffu, wRow0 + lane < T_ && lane < MT * 16 && p.rowSlot[wRow0 + lane] >= 0);
    }

    // s (scores) -> p = 2^z, z = s * sl2 - lse2 of the row; masked elements (MASK: keys outside the
    // row's [first, i], rows >= T) get p = 0 and z = -1e30, so p*z = 0. Per row: sums of p, p*z and
    // p*(j - k0 - 2c) (a compile-time offset).
    template <int BC, bool MASK>
    __device__ __forceinline__ void probabilities(float (&s)[MT][BC / 8][4], int k0, float sl2, int T_, int c, float (&mass)[MT][2],
                                                  float (&ent)[MT][2], float (&off)[MT][2]) const {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int r = 0; r < 2; ++r) mass[mt][r] = ent[mt][r] = off[mt][r] = 0.f;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int nt = 0; nt < BC / 8; ++nt)
#pragma unroll
                for (int x = 0; x < 4; ++x) {
                    const int r = x >> 1;
                    float z = fmaf(s[mt][nt][x], sl2, -rowLse2[mt][r]);
                    if constexpr (MASK) {
                        const int j = k0 + nt * 8 + 2 * c + (x & 1);
                        if (j > rowI[mt][r] || j < rowFirst[mt][r] || rowI[mt][r] >= T_) z = -1e30f;
                    }
                    const float pv = fastExp2(z);
                    s[mt][nt][x] = pv;
                    mass[mt][r] += pv;
                    ent[mt][r] = fmaf(pv, z, ent[mt][r]);
                    off[mt][r] = fmaf(pv, static_cast<float>(nt * 8 + (x & 1)), off[mt][r]);
                }
    }

    // This lane's mass in 8-key group nt of the tile (its elements of every row).
    template <int NG>
    static __device__ __forceinline__ float groupMass(const float (&s)[MT][NG][4], int nt) {
        float g = 0.f;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) g += (s[mt][nt][0] + s[mt][nt][1]) + (s[mt][nt][2] + s[mt][nt][3]);
        return g;
    }

    __device__ __forceinline__ void flushBin(int lane) {
        if (curBin >= 0) laneBins[curBin * 32 + lane] += curAcc;
        curAcc = 0.f;
    }

    // This lane's mass in the groups from N on whose keys lie at or below the row's cut cr (keys
    // relative to k0 + 2c): groups before N are below for every row (their mass is pre[N]); the
    // cut of every row falls before group N + 2*MT + 1 (the warp's MT*16 rows span 2*MT + 1 groups).
    template <int N, int NG>
    __device__ __forceinline__ float tailFrom(const float (&s)[MT][NG][4], const float (&pre)[NG + 1], const int (&cr)[MT][2]) const {
        float t = pre[N];
#pragma unroll
        for (int q = 0; q < 2 * MT + 1; ++q) {
            const int nt = N + q;
            if (nt < NG) {
#pragma unroll
                for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                    for (int x = 0; x < 4; ++x)
                        if (nt * 8 + (x & 1) <= cr[mt][x >> 1]) t += s[mt][nt < NG ? nt : 0][x];
            }
        }
        return t;
    }

    // A tile whose distances span bins bLo < bHi. With tail(B) = mass at distance >= B, i.e. keys
    // j <= i - B: bin b (distances [lo(b), lo(b+1)), lo(0) = 0, lo(b) = 2^(b-1)) has
    // tail(lo(b)) - tail(lo(b+1)), tail(lo(bLo)) being the whole tile. Each tail is this lane's
    // prefix over the groups below every row's cut plus the few groups a cut falls in, reached by
    // a jump on the (warp-uniform) number of whole groups: written as one loop, the compiler
    // predicates the per-element tests of every group instead.
    template <int BC>
    __device__ __forceinline__ void multiBinTile(const float (&s)[MT][BC / 8][4], int k0, int bLo, int bHi, float total, int lane) {
        constexpr int NG = BC / 8;
        static_assert(NG <= 16, "tiles of at most 128 keys");
        const int c = lane % 4;
        float pre[NG + 1];
        pre[0] = 0.f;
#pragma unroll
        for (int nt = 0; nt < NG; ++nt) pre[nt + 1] = pre[nt] + groupMass(s, nt);
        float prevTail = total;
        for (int b = bLo + 1; b <= bHi; ++b) {
            const int B = 1 << (b - 1);
            int cr[MT][2];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int r = 0; r < 2; ++r) cr[mt][r] = rowI[mt][r] - B - k0 - 2 * c;
            const int cLo = row0 - B - k0;  // the lowest cut of the warp's rows (relative to k0)
            const int nFull = cLo + 1 <= 0 ? 0 : min((cLo + 1) / 8, NG);
            float tail = 0.f;
            switch (nFull) {
#define SPANSCOPE_TAIL_CASE(N) \
    case N:                    \
        if constexpr (N <= NG) tail = tailFrom<(N <= NG ? N : 0), NG>(s, pre, cr); \
        break;
                SPANSCOPE_TAIL_CASE(0) SPANSCOPE_TAIL_CASE(1) SPANSCOPE_TAIL_CASE(2) SPANSCOPE_TAIL_CASE(3)
                SPANSCOPE_TAIL_CASE(4) SPANSCOPE_TAIL_CASE(5) SPANSCOPE_TAIL_CASE(6) SPANSCOPE_TAIL_CASE(7)
                SPANSCOPE_TAIL_CASE(8) SPANSCOPE_TAIL_CASE(9) SPANSCOPE_TAIL_CASE(10) SPANSCOPE_TAIL_CASE(11)
                SPANSCOPE_TAIL_CASE(12) SPANSCOPE_TAIL_CASE(13) SPANSCOPE_TAIL_CASE(14) SPANSCOPE_TAIL_CASE(15)
                SPANSCOPE_TAIL_CASE(16)
#undef SPANSCOPE_TAIL_CASE
            default: break;
            }
            laneBins[(b - 1) * 32 + lane] += prevTail - tail;
            prevTail = tail;
        }
        laneBins[bHi * 32 + lane] += prevTail;
    }

    // Do this warp's rows see any key of the BC-key tile at k0?
    __device__ __forceinline__ bool live(int k0, int bc) const { return rowLast >= row0 && k0 <= rowLast && k0 + bc - 1 >= firstLo; }

    // The tile's statistics; s (the raw scores) is overwritten with the probabilities.
    template <int BC>
    __device__ __forceinline__ void tile(const SpanStatsParams& p, const StatsRegion& reg, float (&s)[MT][BC / 8][4], int k0,
                                         const int8_t* keyBin, int h, int lane) {
        const int T_ = p.T, c = lane % 4;
        const float sl2 = p.scale * 1.4426950408889634f;
        const bool needMask = !(k0 + BC - 1 <= row0 && firstHi <= k0 && fullRows);
        // p = 2^z with z = log2 p replaces s; per row: tile mass, sum p*z, sum p*offset. Two copies of
        // the loop: folded into one, the compiler predicates the mask and issues it on every tile.
        float tileMass[MT][2], tileEnt[MT][2], tileOff[MT][2];
        if (needMask) probabilities<BC, true>(s, k0, sl2, T_, c, tileMass, tileEnt, tileOff);
        else probabilities<BC, false>(s, k0, sl2, T_, c, tileMass, tileEnt, tileOff);
        float warpTileMass = 0.f;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                rowEnt[mt][r] -= tileEnt[mt][r];
                accDist += tileMass[mt][r] * static_cast<float>(rowI[mt][r] - k0 - 2 * c) - tileOff[mt][r];
                warpTileMass += tileMass[mt][r];
            }
        // Beyond span: d >= beyond  <=>  j <= i - beyond = cut. Decided for the warp's rows at once
        // (a per-row test is predicated on every tile): all rows take the whole tile, or some cut
        // falls inside it (per element), or none sees it.
        if (row0 - beyond >= k0 + BC - 1) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int r = 0; r < 2; ++r) rowBeyond[mt][r] += tileMass[mt][r];
        } else if (rowLast - beyond >= k0) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    const int cut = rowI[mt][r] - beyond;
                    float part = 0.f;
#pragma unroll
                    for (int nt = 0; nt < BC / 8; ++nt)
#pragma unroll
                        for (int e = 0; e < 2; ++e)
                            if (k0 + nt * 8 + 2 * c + e <= cut) part += s[mt][nt][2 * r + e];
                    rowBeyond[mt][r] += part;
                }
        }
        if (hasRows) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    const int i = rowI[mt][r];
                    const int slot = i < T_ ? p.rowSlot[i] : -1;
                    if (slot < 0) continue;
                    float* dst = p.rows + (static_cast<int64_t>(slot) * p.H + h) * T_;
#pragma unroll
                    for (int nt = 0; nt < BC / 8; ++nt)
#pragma unroll
                        for (int e = 0; e < 2; ++e) {
                            const int j = k0 + nt * 8 + 2 * c + e;
                            if (j < T_) dst[j] = s[mt][nt][2 * r + e];
                        }
                }
        }
        if (k0 < p.sinkTokens)
            forEachScore<MT, BC>(k0, c, [&](int mt, int nt, int x, int j) {
                if (j < p.sinkTokens) accSink += s[mt][nt][x];
            });
        // Distance bins over the warp's (uniform) range: far from the diagonal one bin takes the
        // tile's mass (cached until the bin changes); otherwise bins from tail masses.
        const int kLastValid = min(k0 + BC, T_) - 1;
        const int bLo = distBin(max(row0 - kLastValid, 0)), bHi = distBin(rowLast - k0);
        if (bLo == bHi) {
            if (bLo != curBin) {
                flushBin(lane);
                curBin = bLo;
            }
            curAcc += warpTileMass;
        } else {
            multiBinTile<BC>(s, k0, bLo, bHi, warpTileMass, lane);
        }
        // Pooled map: the cells of this warp's rows x the tile's keys inside the region.
        const int kMapLo = max(k0, p.mapK0), kMapHi = min(kLastValid, p.mapK1 - 1);
        if (qbLo > qbHi || kMapLo > kMapHi) return;
        const int kbLo = reg.keyBin(p, kMapLo), kbHi = reg.keyBin(p, kMapHi);
        float* pooledH = p.pooled + static_cast<int64_t>(h) * p.Pq * p.Pk;
        const bool oneRowBin = qbLo == qbHi && row0 >= p.mapQ0 && rowLast < p.mapQ1 && fullRows;
        if (oneRowBin && kbLo == kbHi && kMapLo == k0 && kMapHi == k0 + BC - 1) {
            // One cell takes the warp's whole tile.
            const float warpMassSum = warpSum(warpTileMass);
            if (lane == 0 && warpMassSum != 0.f)
                atomicAdd(&pooledH[static_cast<int64_t>(qbLo) * p.Pk + kbLo], warpMassSum * scaleLo);
            return;
        }
        // Is every 8-key group inside one key bin (or outside the region)? keyBin is the same for
        // every lane, so the answer is too.
        bool groupsAligned = oneRowBin;
        if (groupsAligned) {
            bool ok = true;
            if (lane < BC / 8) ok = keyBin[lane * 8] == keyBin[lane * 8 + 7];
            groupsAligned = __all_sync(0xffffffffu, ok);
        }
        if (groupsAligned) {
            // Sums of the 8-key groups over the warp by a reduce-scatter (each step halves the
            // values a lane keeps: afterwards lane l holds group l / (32 / NG)), then a segmented
            // sum over the groups of each key bin (bins are contiguous runs of groups); the lane of
            // a bin's first group adds the cell.
            constexpr int NG = BC / 8, LPG = 32 / NG;  // groups, lanes per group
            float v[NG];
#pragma unroll
            for (int nt = 0; nt < NG; ++nt) v[nt] = groupMass(s, nt);
            reduceScatter<NG / 2, 16>(v, lane);
            float x = v[0];
#pragma unroll
            for (int o = LPG / 2; o >= 1; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
            const int nt = lane / LPG, kb = keyBin[nt * 8];
#pragma unroll
            for (int d = 1; d < NG; d *= 2) {
                const float ox = __shfl_down_sync(0xffffffffu, x, d * LPG);
                const int okb = __shfl_down_sync(0xffffffffu, kb, d * LPG);
                if (nt + d < NG && okb == kb) x += ox;
            }
            const bool head = nt == 0 || keyBin[nt * 8 - 1] != kb;
            if (lane % LPG == 0 && head && kb >= 0 && x != 0.f)
                atomicAdd(&pooledH[static_cast<int64_t>(qbLo) * p.Pk + kbLo + kb], x * scaleLo);
        } else if (kbHi - kbLo < 16) {
            pooledTile<MT, BC>(pooledH, s, keyBin, rowQb, qbLo, qbHi, kbLo, kbHi - kbLo + 1, p.Pk, reg.lenQ, p.Pq, reg.invPq, lane);
        } else if ((qbHi - qbLo + 1) * (kbHi - kbLo + 1) <= kStatsMaxWarpCells) {
            for (int qb = qbLo; qb <= qbHi; ++qb)
                for (int kb = kbLo; kb <= kbHi; ++kb) {
                    const int jLo = max(regionBinStart(kb, p.mapK0, reg.lenK, p.Pk, reg.invPk), kMapLo);
                    const int jHi = min(regionBinStart(kb + 1, p.mapK0, reg.lenK, p.Pk, reg.invPk), kMapHi + 1);
                    float part = 0.f;
                    forEachScore<MT, BC>(k0, c, [&](int mt, int nt, int x, int j) {
                        if (rowQb[mt][x >> 1] == qb && j >= jLo && j < jHi) part += s[mt][nt][x];
                    });
                    part = warpSum(part);
                    if (lane == 0 && part != 0.f)
                        atomicAdd(&pooledH[static_cast<int64_t>(qb) * p.Pk + kb], part * rowBinScale(qb, reg.lenQ, p.Pq, reg.invPq));
                }
        } else {
            forEachScore<MT, BC>(k0, c, [&](int mt, int nt, int x, int j) {
                const float pv = s[mt][nt][x];
                const int qb = rowQb[mt][x >> 1];
                if (pv != 0.f && qb >= 0 && j >= kMapLo && j <= kMapHi)
                    atomicAdd(&pooledH[static_cast<int64_t>(qb) * p.Pk + reg.keyBin(p, j)], pv * rowBinScale(qb, reg.lenQ, p.Pq, reg.invPq));
            });
        }
    }

    // Per-query sums (head means, one atomic per row), the warp's distance bins added to the
    // block's sBins, and this warp's per-head sums (entropy, distance, beyond span, sink), the same
    // in every lane.
    __device__ __forceinline__ void finish(const SpanStatsParams& p, int lane, float* sBins, float (&sums)[4]) {
        const int c = lane % 4;
        float ent = 0.f, bey = 0.f;
        const float invH = 1.f / static_cast<float>(p.H);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const float e = quadSum(rowEnt[mt][r]) * 0.6931471805599453f;  // log2 -> nats
                const float bq = quadSum(rowBeyond[mt][r]);
                if (c == 0 && rowI[mt][r] < p.T) {
                    atomicAdd(&p.entropyPerQuery[rowI[mt][r]], e * invH);
                    if (p.beyondSpan > 0) atomicAdd(&p.beyondPerQuery[rowI[mt][r]], bq * invH);
                    ent += e;
                    bey += bq;
                }
            }
        sums[0] = warpSum(ent);
        sums[1] = warpSum(accDist);
        sums[2] = warpSum(bey);
        sums[3] = warpSum(accSink);
        flushBin(lane);
        __syncwarp();
        for (int b = 0; b < kStatsDistanceBins; ++b) {
            const float v = laneBins[b * 32 + lane];
            if (!__any_sync(0xffffffffu, v != 0.f)) continue;  // bins the warp never reached (most, for windows)
            const float x = warpSum(v);
            if (lane == 0) atomicAdd(&sBins[b], x);
        }
    }
};

// The block's per-head totals: warp w's sums in sRed[x][w] (x = entropy, distance, beyond, sink),
// distance bins in sBins; threads t = 0 .. kStatsDistanceBins-1 of the block (after a barrier).
__device__ __forceinline__ void addBlockStats(const SpanStatsParams& p, const float (*sRed)[16], int nWarps, const float* sBins,
                                              int h, int t) {
    if (t < 4) {
        double tot = 0;
        for (int w = 0; w < nWarps; ++w) tot += sRed[t][w];
        double* dst[4] = {p.entropy, p.distance, p.beyondMass, p.sinkMass};
        if (t != 2 || p.beyondSpan > 0) atomicAdd(dst[t] + h, tot);
    }
    if (t < kStatsDistanceBins && sBins[t] != 0.f)
        atomicAdd(&p.binMass[h * kStatsDistanceBins + t], static_cast<double>(sBins[t]));
}

}  // namespace spanscope::cuda
