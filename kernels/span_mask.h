// The attention mask of one layer, as plain arithmetic usable on the host and in CUDA kernels.
//
// All kinds are causal (key j <= query i):
//   Full     every j <= i
//   Window   0 <= i - j < span
//   Block    floor(j/span) == floor(i/span), or == floor(i/span) - 1 when prevBlock
// (SparseK's local window is a Window mask; its selected keys are data-dependent.)
// firstKey(i) is non-decreasing in i, so a tile of queries [q0, q1) needs keys [firstKey(q0), q1).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SPANSCOPE_HD __host__ __device__
#else
#define SPANSCOPE_HD
#endif

namespace spanscope {

// Attention-distance bins of the statistics: bin 0 is distance 0, bin b >= 1 is [2^(b-1), 2^b).
constexpr int64_t kNumDistanceBins = 24;  // covers distances below 2^23

// Bin of a query–key distance d >= 0: 0 for d = 0, floor(log2 d) + 1 otherwise.
SPANSCOPE_HD inline int64_t distanceBin(int64_t d) {
    int64_t b = 0;
    while (d > 0) { d >>= 1; ++b; }
    return b;
}

enum class MaskKind : int32_t { Full = 0, Window = 1, Block = 2 };

struct SpanMask {
    MaskKind kind = MaskKind::Full;
    int64_t span = 0;
    bool prevBlock = false;

    SPANSCOPE_HD bool allows(int64_t i, int64_t j) const {
        if (j > i || j < 0) return false;
        if (kind == MaskKind::Window) return i - j < span;
        if (kind == MaskKind::Block) {
            int64_t bi = i / span, bj = j / span;
            return bj == bi || (prevBlock && bj == bi - 1);
        }
        return true;
    }
    SPANSCOPE_HD int64_t firstKey(int64_t i) const {
        if (kind == MaskKind::Window) return i - span + 1 > 0 ? i - span + 1 : 0;
        if (kind == MaskKind::Block) {
            int64_t start = (i / span) * span;
            if (prevBlock) start -= span;
            return start > 0 ? start : 0;
        }
        return 0;
    }
};

}  // namespace spanscope
