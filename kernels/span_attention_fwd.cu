// Span attention forward (FlashAttention-2 style) for full / window / block(+prev) causal masks.
//
// q, k, v: (B, H, T, D) bf16/fp16 -> out (B, H, T, D) same dtype, lse (B, H, T) fp32.
//
// Algorithm. One thread block (4 warps) owns a tile of kBr = 128 queries [q0, q0+128) of one (b, h);
// each warp owns 32 rows (two m16 tiles, so every K/V fragment read from shared memory feeds two
// MMAs). Every mask allows, for query i, exactly the keys [firstKey(i), i], and firstKey is
// non-decreasing, so the block visits only key tiles in [firstKey(q0), min(q0+128, T)): the work
// follows the attended pairs. For each key tile: S = Q K^T on tensor cores (fp32), the element mask
// only where the tile is not entirely inside every row's interval (decided per warp), online
// softmax in base 2 (scores pre-multiplied by scale*log2 e), then O += P V with P re-packed from
// the S accumulators straight into A fragments (no shared-memory round trip). K/V tiles are
// double-buffered with cp.async: tile t+1 streams in while tile t is computed. A warp whose rows
// see none of the tile skips it. Query tiles are issued last-first, so the long causal rows start
// first. Rows and keys past T are zero-filled on load and never stored; causality masks those keys
// for every real row.
#include "kernels/span_attention.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/launch.cuh"
#include "kernels/mma_tile.cuh"

namespace spanscope::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kMT = 2;                 // m16 tiles per warp
constexpr int kBr = kWarps * kMT * 16; // 128 query rows per block

// Per head dim: key-tile width BC and whether the Q fragments stay in registers (QREGS).
template <int D, int BC_, bool QREGS_> struct FwdConfig {
    static constexpr int kBc = BC_;
    static constexpr bool kQRegs = QREGS_;
};

template <int D, typename T, typename Cfg>
__global__ void __launch_bounds__(kThreads) span_attention_fwd_kernel(const SpanAttentionParams p) {
    constexpr int BC = Cfg::kBc;
    constexpr bool QREGS = Cfg::kQRegs;
    extern __shared__ __align__(128) unsigned char smemRaw[];
    T* sQ = reinterpret_cast<T*>(smemRaw);  // (kBr, D), reused to stage the output
    T* sK = sQ + kBr * D;                   // 2 stages of (BC, D)
    T* sV = sK + 2 * BC * D;                // 2 stages of (BC, D)

    const int T_ = p.T;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kBr;
    const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H;
    const T* qg = static_cast<const T*>(p.q) + b * p.qs.b + h * p.qs.h;
    const T* kg = static_cast<const T*>(p.k) + b * p.ks.b + h * p.ks.h;
    const T* vg = static_cast<const T*>(p.v) + b * p.vs.b + h * p.vs.h;
    T* og = static_cast<T*>(p.out) + b * p.os.b + h * p.os.h;
    const SpanMask mask = p.mask;

    const int qLast = min(q0 + kBr, T_) - 1;
    const int kBegin = static_cast<int>(mask.firstKey(q0)) / BC * BC;
    const int nTiles = (qLast + 1 - kBegin + BC - 1) / BC;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, c = lane % 4;
    const int wRowLocal = warp * kMT * 16;
    const int wRow0 = q0 + wRowLocal;
    const int wRowLast = min(wRow0 + kMT * 16, T_) - 1;  // < wRow0 when the warp has no real rows
    const int wFirstLo = wRowLast >= wRow0 ? static_cast<int>(mask.firstKey(wRow0)) : 0;
    const int wFirstHi = wRowLast >= wRow0 ? static_cast<int>(mask.firstKey(wRowLast)) : 0;

    loadTile<kBr, D, kThreads>(sQ, qg, p.qs.t, q0, T_);
    cpAsyncCommit();
    loadTile<BC, D, kThreads>(sK, kg, p.ks.t, kBegin, T_);
    loadTile<BC, D, kThreads>(sV, vg, p.vs.t, kBegin, T_);
    cpAsyncCommit();

    int rowI[kMT][2], rowFirst[kMT][2];
    float o[kMT][D / 8][4], m[kMT][2], l[kMT][2];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            rowI[mt][r] = wRow0 + mt * 16 + g + 8 * r;
            rowFirst[mt][r] = static_cast<int>(mask.firstKey(rowI[mt][r]));
            m[mt][r] = -INFINITY;
            l[mt][r] = 0.f;
        }
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.f;
    }
    uint32_t qf[QREGS ? kMT : 1][QREGS ? D / 16 : 1][4];
    const float sl2 = p.scale * 1.4426950408889634f;

    for (int it = 0; it < nTiles; ++it) {
        const int k0 = kBegin + it * BC;
        const int stage = it & 1;
        if (it + 1 < nTiles) {
            loadTile<BC, D, kThreads>(sK + (stage ^ 1) * BC * D, kg, p.ks.t, k0 + BC, T_);
            loadTile<BC, D, kThreads>(sV + (stage ^ 1) * BC * D, vg, p.vs.t, k0 + BC, T_);
        }
        cpAsyncCommit();
        cpAsyncWait<1>();
        __syncthreads();
        if constexpr (QREGS) {
            if (it == 0) loadQFragments<D, kMT, T>(qf, sQ, wRowLocal, lane);
        }
        const bool live = wRowLast >= wRow0 && k0 <= wRowLast && k0 + BC - 1 >= wFirstLo;
        if (live) {
            const T* kt = sK + stage * BC * D;
            const T* vt = sV + stage * BC * D;
            float s[kMT][BC / 8][4];
            warpScores<D, BC, kMT, QREGS, T>(s, qf, sQ, kt, wRowLocal, lane);
            const bool needMask = !(k0 + BC - 1 <= wRow0 && wFirstHi <= k0);
            if (needMask) maskOutsideRows<BC, kMT>(s, k0, rowI, rowFirst, c);
            onlineSoftmaxPV<D, BC, kMT, T>(s, m, l, o, sl2, vt, lane);
        }
        __syncthreads();
    }

    // Epilogue: normalise, stage this warp's rows in sQ (free now), write 16-byte chunks. Written
    // out rather than storeWarpRows (mma_tile.cuh): with the helper ptxas spills 32 bytes instead of 12
    // at d = 64 (nvcc 13.0, 255 registers).
    float* lseg = p.lse + static_cast<int64_t>(bh) * T_;
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float lTot = quadSum(l[mt][r]);
            const float inv = lTot > 0.f ? 1.f / lTot : 0.f;
            const int rowLocal = wRowLocal + mt * 16 + g + 8 * r;
#pragma unroll
            for (int dt = 0; dt < D / 8; ++dt)
                *reinterpret_cast<uint32_t*>(sQ + swz<D>(rowLocal, dt * 8 + 2 * c)) =
                    packPair<T>(o[mt][dt][2 * r] * inv, o[mt][dt][2 * r + 1] * inv);
            if (c == 0 && rowI[mt][r] < T_) lseg[rowI[mt][r]] = (m[mt][r] + __log2f(lTot)) * 0.6931471805599453f;
        }
    __syncwarp();
#pragma unroll
    for (int idx = lane; idx < kMT * 16 * D / 8; idx += 32) {
        const int row = idx / (D / 8), ch = idx % (D / 8);
        if (wRow0 + row < T_)
            *reinterpret_cast<uint4*>(og + static_cast<int64_t>(wRow0 + row) * p.os.t + ch * 8) =
                *reinterpret_cast<const uint4*>(sQ + swz<D>(wRowLocal + row, ch * 8));
    }
}

template <int D, typename T, typename Cfg>
void launchFwd(const SpanAttentionParams& p, cudaStream_t stream) {
    constexpr int BC = Cfg::kBc;
    const size_t smem = static_cast<size_t>(kBr + 4 * BC) * D * sizeof(T);
    launchKernel(span_attention_fwd_kernel<D, T, Cfg>, dim3((p.T + kBr - 1) / kBr, p.B * p.H), kThreads, smem, stream, p,
                 "span attention forward");
}

}  // namespace

// See span_attention.h. The Hopper kernels exist only in an sm_90a build (SPANSCOPE_SM90A).
int sm90KernelChoice(const char* envName) {
    int requested = 0;
    if (const char* env = std::getenv(envName); env != nullptr && *env != '\0') {
        const std::string s(env);
        if (s == "mma") return -1;
        if (s.rfind("sm90:", 0) != 0 || s.size() == 5 || s.find_first_not_of("0123456789", 5) != std::string::npos)
            throw std::invalid_argument(std::string(envName) + " must be \"mma\" or \"sm90:N\", got \"" + s + "\"");
        requested = std::atoi(s.c_str() + 5);
    }
#if defined(SPANSCOPE_SM90A)
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess && major == 9 && minor == 0)
        return requested;
#endif
    (void)requested;  // validated above; without sm_90a code there is nothing to choose
    return -1;
}

void span_attention_fwd_launch(const SpanAttentionParams& p, cudaStream_t stream) {
    if (p.T <= 0 || p.B * p.H <= 0) return;
    if (p.D != 64 && p.D != 128)
        throw std::invalid_argument("span attention: head dim must be 64 or 128, got " + std::to_string(p.D));
    if (const int variant = sm90KernelChoice("SPANSCOPE_FWD_KERNEL"); variant >= 0)
        if (span_attention_fwd_sm90_launch(p, variant, stream)) return;
    const bool bf16 = p.elem == ElemType::BF16;
    // Measured on the H100 (bench/tune_fwd.py, 2026-11-23): d=64 keeps Q in registers with 64-key
    // tiles; d=128 uses 32-key tiles (64-key tiles spill and lose on window 512 / block 1024).
    if (p.D == 64) {
        using Cfg = FwdConfig<64, 64, true>;
        bf16 ? launchFwd<64, __nv_bfloat16, Cfg>(p, stream) : launchFwd<64, __half, Cfg>(p, stream);
    } else {
        using Cfg = FwdConfig<128, 32, false>;
        bf16 ? launchFwd<128, __nv_bfloat16, Cfg>(p, stream) : launchFwd<128, __half, Cfg>(p, stream);
    }
}

}  // namespace spanscope::cuda
