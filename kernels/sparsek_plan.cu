// SparseK selection plan on the GPU (see kernels/span_attention.h, SparseKPlanParams): the exact
// streaming selection of sparsek_select_cpu (kernels/sparsek_attention_cpu.cpp), restructured for
// one thread block of 128 threads per (b, h) and segment of kSparseKPlanSegmentBlocks query blocks:
//
//   0. (segments after the first) the active set before the segment's first query qs is rebuilt
//      from the prefix: bracket tau(qs - 1) from below by multisection in double (4 passes over
//      the candidate keys, 16 points each; S(t) >= k keeps t below tau), take the keys above that
//      bound and bitonic-sort them. Keys between the bound and the true tau are harmless extras;
//   for each block of 128 queries [q0, q0 + 128) of the segment:
//     1. the 128 keys that join (key q0 + r - w joins at query q0 + r) are sorted by (score desc,
//        key asc) with a bitonic network;
//     2. they are merged into the sorted active set by rank (binary search in the other list);
//     3. thread r solves tau for query q0 + r by the breakpoint walk of sparsek_threshold_sorted
//        over the entries it may see (the old set plus the keys joined by then);
//     4. the block's key list: old entries with z > tau(q0) and each joining key with z > tau at
//        its joining query — every key some query of the block selects, since tau never
//        decreases — ordered ascending by rank counting;
//     5. the set is pruned to z > tau of the block's last query, order kept (block scan).
// Entries that sparsek_select_cpu would already have dropped inside a block (z <= an earlier tau)
// stay until step 5; they lie at or below every later tau, so the walk ends at the same piece with
// the same sums: the same tau. Double arithmetic uses _rn intrinsics (no FMA contraction) so the
// result matches the host's IEEE double walk.
#include "kernels/span_attention.h"

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/launch.cuh"

namespace spanscope::cuda {
namespace {

constexpr int kRows = 128;                                   // queries per block = threads
constexpr int kCap = kSparseKPlanCapacity + kRows;           // merged set capacity
constexpr int kSections = 16;                                // multisection points per pass
constexpr int kSectionPasses = 4;

struct PlanSmem {
    double z[2][kCap];
    int32_t key[2][kCap];
    int16_t join[2][kCap];    // -1: joined before this block; r: joins at query q0 + r
    int32_t list[kCap];
    double zNew[kRows];
    int32_t keyNew[kRows];
    double tauRow[kRows];
    int32_t scan[kRows];
    double red[kSections][kRows / 32];
    int32_t count;
};

// (z, key) order of the active set: higher score first, earlier key first among equal scores.
__device__ __forceinline__ bool before(double za, int32_t ka, double zb, int32_t kb) {
    return za > zb || (za == zb && ka < kb);
}

// Number of entries [0, n) of the sorted (z, key) list that come before (zx, kx).
__device__ __forceinline__ int rankIn(const double* z, const int32_t* key, int n, double zx, int32_t kx) {
    int lo = 0, hi = n;
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (before(z[mid], key[mid], zx, kx)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

// Exclusive block scan of one value per thread (128 threads); returns the thread's offset and
// leaves the total in s.count. Contains __syncthreads.
__device__ int blockScan(PlanSmem& s, int v) {
    const int r = threadIdx.x;
    s.scan[r] = v;
    __syncthreads();
    if (r == 0) {
        int acc = 0;
        for (int t = 0; t < kRows; ++t) {
            const int x = s.scan[t];
            s.scan[t] = acc;
            acc += x;
        }
        s.count = acc;
    }
    __syncthreads();
    return s.scan[r];
}

// tau of one query over the n entries of (z, join) that have join <= r, sorted descending:
// sparsek_threshold_sorted's walk (0 < k < considered) and its trivial cases.
__device__ double solveTau(const double* z, const int16_t* join, int n, int r, double k, int& considered) {
    int m = 0, last = -1;
    for (int e = 0; e < n; ++e)
        if (join[e] <= r) {
            ++m;
            last = e;
        }
    considered = m;
    if (m == 0) return -INFINITY;
    if (k >= static_cast<double>(m)) return __dadd_rn(z[last], -1.0);
    auto nextValid = [&](int e) {
        while (e < n && join[e] > r) ++e;
        return e;
    };
    int pa = nextValid(0), pb = pa, nA = 0, nB = 0;
    double sumF = 0, current = INFINITY;
    for (int guard = 0; guard < 2 * n + 2; ++guard) {
        const bool enter = nA < m && z[pa] >= __dadd_rn(z[pb], -1.0);
        const double next = enter ? z[pa] : __dadd_rn(z[pb], -1.0);
        const int freeN = nA - nB;
        if (freeN > 0 && __dadd_rn(__dadd_rn(static_cast<double>(nB), sumF), -__dmul_rn(static_cast<double>(freeN), next)) >= k) {
            double exactSum = 0;
            for (int e = pb; e < pa; ++e)
                if (join[e] <= r) exactSum = __dadd_rn(exactSum, z[e]);
            const double t = __ddiv_rn(__dadd_rn(__dadd_rn(static_cast<double>(nB), exactSum), -k), static_cast<double>(freeN));
            return fmin(fmax(t, next), current);
        }
        if (enter) {
            sumF = __dadd_rn(sumF, z[pa]);
            ++nA;
            pa = nextValid(pa + 1);
        } else {
            sumF = __dadd_rn(sumF, -z[pb]);
            ++nB;
            pb = nextValid(pb + 1);
        }
        current = next;
    }
    return current;  // not reached: S reaches m > k before the entries run out
}

// Sum over the block's 128 threads of v[0..N) (one warp-partial per warp, then thread 0); every
// thread gets the sums. Contains __syncthreads.
template <int N>
__device__ void blockSums(PlanSmem& s, double (&v)[N]) {
    const int r = threadIdx.x, lane = r % 32, warp = r / 32;
#pragma unroll
    for (int p = 0; p < N; ++p) {
        double x = v[p];
        for (int o = 16; o > 0; o >>= 1) x = __dadd_rn(x, __shfl_xor_sync(0xffffffffu, x, o));
        if (lane == 0) s.red[p][warp] = x;
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < N; ++p) {
        double x = 0;
        for (int w = 0; w < kRows / 32; ++w) x = __dadd_rn(x, s.red[p][w]);
        v[p] = x;
    }
    __syncthreads();
}

// Bitonic sort of entries [0, n2) of (z, key) in (score desc, key asc) order; n2 a power of two.
__device__ void sortSet(double* z, int32_t* key, int n2) {
    for (int size = 2; size <= n2; size <<= 1)
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < n2; i += kRows) {
                const int o = i ^ stride;
                if (o <= i) continue;
                const bool ascending = (i & size) == 0;
                const bool swap = ascending ? before(z[o], key[o], z[i], key[i]) : before(z[i], key[i], z[o], key[o]);
                if (swap) {
                    const double zt = z[i];
                    z[i] = z[o];
                    z[o] = zt;
                    const int32_t kt = key[i];
                    key[i] = key[o];
                    key[o] = kt;
                }
            }
            __syncthreads();
        }
}

// The active set before query qs (keys 0..qs-1-W), or a superset whose extra keys lie at or below
// tau(qs - 1), sorted into s.z[0], s.key[0]. Returns its size, or -1 when it outgrows the capacity.
__device__ int initialSet(PlanSmem& s, const float* u, int qs, int W, double k) {
    const int last = qs - 1 - W, r = threadIdx.x;
    if (last < 0) return 0;
    double stat[3] = {0, INFINITY, -INFINITY};  // finite count, min, max
    for (int j = r; j <= last; j += kRows) {
        const float x = u[j];
        if (x == -INFINITY) continue;
        stat[0] += 1;
        stat[1] = fmin(stat[1], static_cast<double>(x));
        stat[2] = fmax(stat[2], static_cast<double>(x));
    }
    {
        double cnt[1] = {stat[0]};
        blockSums(s, cnt);
        stat[0] = cnt[0];
    }
    const int lane = r % 32, warp = r / 32;
    double mn = stat[1], mx = stat[2];
    for (int o = 16; o > 0; o >>= 1) {
        mn = fmin(mn, __shfl_xor_sync(0xffffffffu, mn, o));
        mx = fmax(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    }
    if (lane == 0) {
        s.red[0][warp] = mn;
        s.red[1][warp] = mx;
    }
    __syncthreads();
    for (int w = 0; w < kRows / 32; ++w) {
        mn = fmin(mn, s.red[0][w]);
        mx = fmax(mx, s.red[1][w]);
    }
    __syncthreads();
    const double m = stat[0];
    if (m == 0) return 0;
    double lo = -INFINITY;  // k >= m: every finite key is active (tau = min - 1)
    if (k < m) {
        lo = __dadd_rn(mn, -1.0);  // S(lo) = m > k
        double hi = mx;            // S(hi) = 0 < k
        for (int pass = 0; pass < kSectionPasses; ++pass) {
            double t[kSections], sum[kSections];
            const double step = __ddiv_rn(__dadd_rn(hi, -lo), static_cast<double>(kSections + 1));
#pragma unroll
            for (int p = 0; p < kSections; ++p) {
                t[p] = __dadd_rn(lo, __dmul_rn(step, static_cast<double>(p + 1)));
                sum[p] = 0;
            }
            for (int j = r; j <= last; j += kRows) {
                const float x = u[j];
                if (x == -INFINITY) continue;
#pragma unroll
                for (int p = 0; p < kSections; ++p) sum[p] = __dadd_rn(sum[p], fmin(fmax(__dadd_rn(static_cast<double>(x), -t[p]), 0.0), 1.0));
            }
            blockSums(s, sum);
            // S falls with t: the last point with S >= k is the new lower end, the next the upper.
            double newLo = lo, newHi = hi;
            for (int p = 0; p < kSections; ++p)
                if (sum[p] >= k) newLo = t[p];
                else {
                    newHi = t[p];
                    break;
                }
            lo = newLo;
            hi = newHi;
        }
        // The double sums carry rounding (about m * 1e-16 * |z|): step back one more section so that
        // lo stays at or below tau even if a sum near k was rounded up.
        lo = __dadd_rn(lo, -__dadd_rn(hi, -lo));
    }
    if (r == 0) s.count = 0;
    __syncthreads();
    for (int j = r; j <= last; j += kRows) {
        const float x = u[j];
        if (x == -INFINITY || !(static_cast<double>(x) > lo)) continue;
        const int at = atomicAdd(&s.count, 1);
        if (at < kSparseKPlanCapacity) {
            s.z[0][at] = static_cast<double>(x);
            s.key[0][at] = j;
        }
    }
    __syncthreads();
    const int n = s.count;
    if (n > kSparseKPlanCapacity) return -1;
    int n2 = 1;
    while (n2 < n) n2 <<= 1;
    for (int e = n + r; e < n2; e += kRows) {
        s.z[0][e] = -INFINITY;
        s.key[0][e] = INT32_MAX;
    }
    __syncthreads();
    sortSet(s.z[0], s.key[0], n2);
    return n;
}

__global__ void __launch_bounds__(kRows) sparsek_plan_kernel(const SparseKPlanParams p) {
    extern __shared__ __align__(16) unsigned char smemRaw[];
    PlanSmem& s = *reinterpret_cast<PlanSmem*>(smemRaw);
    const int r = threadIdx.x;
    const int seg = blockIdx.x, bh = blockIdx.y;
    const int T = p.T, W = p.window;
    const int NB = (T + kRows - 1) / kRows;
    const int blk0 = seg * kSparseKPlanSegmentBlocks, blk1 = min(NB, blk0 + kSparseKPlanSegmentBlocks);
    const float* u = p.u + static_cast<int64_t>(bh) * T;
    float* tau = p.tau + static_cast<int64_t>(bh) * T;
    int32_t* blockCounts = p.blockCounts + static_cast<int64_t>(bh) * NB;
    int32_t* outKeys = p.keys + (static_cast<int64_t>(bh) * gridDim.x + seg) * p.regionSize;
    int cur = 0, nSet = 0, written = 0;
    unsigned long long selected = 0;
    if (seg > 0) {
        nSet = initialSet(s, u, blk0 * kRows, W, p.topK);
        if (nSet < 0) {
            if (r == 0) *p.overflow = 1;
            return;
        }
    }

    for (int blk = blk0; blk < blk1; ++blk) {
        const int q0 = blk * kRows;
        // 1. Joining keys, sorted by (z desc, key asc); -inf scores and rows past T sort last.
        const int j = q0 + r - W;
        const bool valid = j >= 0 && q0 + r < T && u[j] != -INFINITY;
        s.zNew[r] = valid ? static_cast<double>(u[j]) : -INFINITY;
        s.keyNew[r] = valid ? j : INT32_MAX;
        __syncthreads();
        for (int size = 2; size <= kRows; size <<= 1)
            for (int stride = size >> 1; stride > 0; stride >>= 1) {
                const int o = r ^ stride;
                if (o > r) {
                    const bool ascending = (r & size) == 0;  // in (z, key) order
                    const bool swap = ascending ? before(s.zNew[o], s.keyNew[o], s.zNew[r], s.keyNew[r])
                                                : before(s.zNew[r], s.keyNew[r], s.zNew[o], s.keyNew[o]);
                    if (swap) {
                        const double zt = s.zNew[r];
                        s.zNew[r] = s.zNew[o];
                        s.zNew[o] = zt;
                        const int32_t kt = s.keyNew[r];
                        s.keyNew[r] = s.keyNew[o];
                        s.keyNew[o] = kt;
                    }
                }
                __syncthreads();
            }
        const int nNew = __syncthreads_count(valid);
        if (nSet + nNew > kCap) {
            if (r == 0) *p.overflow = 1;
            return;
        }
        // 2. Merge by rank into the other buffer.
        const int nxt = cur ^ 1;
        for (int e = r; e < nSet; e += kRows) {
            const int pos = e + rankIn(s.zNew, s.keyNew, nNew, s.z[cur][e], s.key[cur][e]);
            s.z[nxt][pos] = s.z[cur][e];
            s.key[nxt][pos] = s.key[cur][e];
            s.join[nxt][pos] = -1;
        }
        if (r < nNew) {
            const int pos = r + rankIn(s.z[cur], s.key[cur], nSet, s.zNew[r], s.keyNew[r]);
            s.z[nxt][pos] = s.zNew[r];
            s.key[nxt][pos] = s.keyNew[r];
            s.join[nxt][pos] = static_cast<int16_t>(s.keyNew[r] + W - q0);
        }
        cur = nxt;
        const int n = nSet + nNew;
        __syncthreads();
        // 3. tau of query q0 + r.
        const int i = q0 + r;
        double t = INFINITY;
        if (i < T) {
            int considered = 0;
            t = solveTau(s.z[cur], s.join[cur], n, r, p.topK, considered);
            tau[i] = static_cast<float>(t);
            for (int e = 0; e < n; ++e) selected += (s.join[cur][e] <= r && s.z[cur][e] > t) ? 1 : 0;
        }
        s.tauRow[r] = t;
        if (r == 0) s.count = 0;
        __syncthreads();
        // 4. The block's list, then ascending order by counting smaller keys.
        for (int e = r; e < n; e += kRows) {
            const int jr = s.join[cur][e];
            const double limit = jr < 0 ? s.tauRow[0] : s.tauRow[jr];
            if (s.z[cur][e] > limit) s.list[atomicAdd(&s.count, 1)] = s.key[cur][e];
        }
        __syncthreads();
        const int nList = s.count;
        for (int e = r; e < nList; e += kRows) {
            const int32_t key = s.list[e];
            int rank = 0;
            for (int f = 0; f < nList; ++f) rank += s.list[f] < key ? 1 : 0;
            outKeys[written + rank] = key;
        }
        written += nList;
        if (r == 0) blockCounts[blk] = nList;
        // 5. Prune to z > tau of the block's last query, keeping the order: thread r keeps its
        //    contiguous chunk's survivors at its scanned offset.
        const double tLast = s.tauRow[min(kRows, T - q0) - 1];
        const int chunk = (n + kRows - 1) / kRows, c0 = min(n, r * chunk), c1 = min(n, c0 + chunk);
        int keep = 0;
        for (int e = c0; e < c1; ++e) keep += s.z[cur][e] > tLast ? 1 : 0;
        int dst = blockScan(s, keep);  // its __syncthreads also end step 4's reads of s.count
        const int kept = s.count;
        const int other = cur ^ 1;
        for (int e = c0; e < c1; ++e)
            if (s.z[cur][e] > tLast) {
                s.z[other][dst] = s.z[cur][e];
                s.key[other][dst] = s.key[cur][e];
                ++dst;
            }
        cur = other;
        nSet = kept;
        __syncthreads();
    }
    // Σ over the block's threads of their queries' selections.
    atomicAdd(p.selected + bh, selected);
}

}  // namespace

void sparsek_plan_launch(const SparseKPlanParams& p, cudaStream_t stream) {
    if (p.T <= 0 || p.BH <= 0) return;
    if (!(p.topK > 0)) throw std::invalid_argument("sparsek plan: the GPU plan needs k > 0");
    if (p.window < 1) throw std::invalid_argument("sparsek plan: window must be >= 1");
    const int nSeg = ((p.T + kRows - 1) / kRows + kSparseKPlanSegmentBlocks - 1) / kSparseKPlanSegmentBlocks;
    launchKernel(sparsek_plan_kernel, dim3(nSeg, p.BH), kRows, sizeof(PlanSmem), stream, p, "sparsek plan");
}

}  // namespace spanscope::cuda
