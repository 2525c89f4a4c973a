// TMA tensor maps for the Hopper kernels (span_attention_fwd_sm90.cu, span_attention_stats_sm90.cu).
#pragma once

#include <cuda.h>

#include "kernels/span_attention.h"

namespace spanscope::cuda {

// A (B, H, T, D) tensor with element strides s (D contiguous) as a 4-d TMA map (dims D, T, H, B)
// with boxes of 64 columns x `rows` rows and the 128-byte swizzle (kernels/wgmma.cuh's SW128
// layout); reads past T give zeros. False when the driver cannot encode it (unusual strides or
// alignment): the caller then uses its mma.sync kernel.
bool encodeTmaMap4d(CUtensorMap* map, const void* ptr, const Strides& s, int B, int H, int T, int D, ElemType elem, int rows);

}  // namespace spanscope::cuda
