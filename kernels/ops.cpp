#include "kernels/ops.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "kernels/span_attention.h"

namespace spanscope {
namespace {

static_assert(cuda::kStatsDistanceBins == kNumDistanceBins, "CUDA and CPU statistics must use the same bins");

#define CHECK_DEVICE(x) TORCH_CHECK((x).is_cuda(), "span attention: " #x " must be a CUDA tensor, got one on ", (x).device())
#define CHECK_SHAPE(x, ...) \
    TORCH_CHECK((x).sizes() == at::IntArrayRef({__VA_ARGS__}), "span attention: " #x " must have shape (" #__VA_ARGS__ "), got ", (x).sizes())
#define CHECK_LAYOUT(x)                                                                                            \
    TORCH_CHECK((x).stride(-1) == 1 && (x).stride(0) % 8 == 0 && (x).stride(1) % 8 == 0 && (x).stride(2) % 8 == 0 && \
                    reinterpret_cast<uintptr_t>((x).data_ptr()) % 16 == 0,                                         \
                "span attention: " #x " must have a contiguous last dimension, 16-byte aligned rows and strides that " \
                "are multiples of 8 elements (call .contiguous()); got strides ", (x).strides())

cuda::Strides stridesOf(const at::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2)}; }

void checkAttentionInputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask) {
    TORCH_CHECK(q.dim() == 4, "span attention: q must be (B, H, T, D), got ", q.sizes());
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
    CHECK_SHAPE(k, B, H, T, D);
    CHECK_SHAPE(v, B, H, T, D);
    CHECK_DEVICE(q);
    TORCH_CHECK(k.device() == q.device() && v.device() == q.device(), "span attention: q, k, v must be on one device, got ",
                q.device(), ", ", k.device(), ", ", v.device());
    TORCH_CHECK(q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf,
                "span attention: q must be bfloat16 or float16, got ", q.scalar_type());
    TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
                "span attention: q, k, v must have one dtype, got ", q.scalar_type(), ", ", k.scalar_type(), ", ", v.scalar_type());
    TORCH_CHECK(D == 64 || D == 128, "span attention: head dim D must be 64 or 128, got ", D);
    TORCH_CHECK(T < (int64_t{1} << 30) && B * H < 65536, "span attention: T or B*H too large: ", q.sizes());
    TORCH_CHECK(mask.kind == MaskKind::Full || mask.span > 0, "span attention: window/block span must be positive, got ", mask.span);
    CHECK_LAYOUT(q);
    CHECK_LAYOUT(k);
    CHECK_LAYOUT(v);
}

SpanMask clampedMask(SpanMask mask, int64_t T) {
    // Spans beyond int range behave like T (the kernels use 32-bit positions).
    if (mask.kind != MaskKind::Full) mask.span = std::min<int64_t>(mask.span, T + 1);
    return mask;
}

cuda::ElemType elemOf(const at::Tensor& t) {
    return t.scalar_type() == at::kBFloat16 ? cuda::ElemType::BF16 : cuda::ElemType::FP16;
}

// Uninitialised forward outputs for q (B, H, T, D): out in q's dtype, lse (B, H, T) float32.
std::tuple<at::Tensor, at::Tensor> emptyOutputs(const at::Tensor& q) {
    return {at::empty(q.sizes(), q.options()), at::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(at::kFloat))};
}

// The fields every attention launch (span and SparseK, forward and backward) shares: q, k, v with
// their strides, the shape (B, H, T, D), the scale and the element type. Inputs already checked.
template <typename Params>
Params qkvLaunchParams(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
    Params p;
    p.q = q.data_ptr();
    p.k = k.data_ptr();
    p.v = v.data_ptr();
    p.qs = stridesOf(q);
    p.ks = stridesOf(k);
    p.vs = stridesOf(v);
    p.B = static_cast<int32_t>(q.size(0));
    p.H = static_cast<int32_t>(q.size(1));
    p.T = static_cast<int32_t>(q.size(2));
    p.D = static_cast<int32_t>(q.size(3));
    p.scale = static_cast<float>(scale);
    p.elem = elemOf(q);
    return p;
}

// The span forward's and backward's: those, and the mask (clamped). Inputs checked by checkAttentionInputs.
template <typename Params>
Params launchParams(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask, double scale) {
    auto p = qkvLaunchParams<Params>(q, k, v, scale);
    p.mask = clampedMask(mask, q.size(2));
    return p;
}

}  // namespace

bool span_attention_cuda_supports(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    auto layoutOk = [](const at::Tensor& t) {
        return t.dim() == 4 && t.stride(-1) == 1 && t.stride(0) % 8 == 0 && t.stride(1) % 8 == 0 && t.stride(2) % 8 == 0 &&
               reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
    };
    return q.is_cuda() && q.dim() == 4 && k.sizes() == q.sizes() && v.sizes() == q.sizes() && k.device() == q.device() &&
           v.device() == q.device() && (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf) &&
           k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type() && (q.size(3) == 64 || q.size(3) == 128) &&
           q.size(2) < (int64_t{1} << 30) && q.size(0) * q.size(1) < 65536 && layoutOk(q) && layoutOk(k) && layoutOk(v);
}

std::tuple<at::Tensor, at::Tensor> span_attention_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                       const SpanMask& mask, double scale) {
    TORCH_CHECK(q.dim() == 4, "span attention: q must be (B, H, T, D), got ", q.sizes());
    auto [out, lse] = emptyOutputs(q);
    span_attention_cuda_out(q, k, v, mask, scale, out, lse);
    return {out, lse};
}

void span_attention_cuda_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask,
                             double scale, at::Tensor& out, at::Tensor& lse) {
    checkAttentionInputs(q, k, v, mask);
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
    CHECK_SHAPE(out, B, H, T, D);
    CHECK_SHAPE(lse, B, H, T);
    TORCH_CHECK(out.scalar_type() == q.scalar_type() && out.device() == q.device(),
                "span attention: out must be ", q.scalar_type(), " on ", q.device());
    CHECK_LAYOUT(out);
    TORCH_CHECK(lse.scalar_type() == at::kFloat && lse.is_contiguous() && lse.device() == q.device(),
                "span attention: lse must be a contiguous float32 tensor on ", q.device());
    const c10::cuda::CUDAGuard guard(q.device());
    auto p = launchParams<cuda::SpanAttentionParams>(q, k, v, mask, scale);
    p.out = out.data_ptr();
    p.lse = lse.data_ptr<float>();
    p.os = stridesOf(out);
    cuda::span_attention_fwd_launch(p, at::cuda::getCurrentCUDAStream().stream());
}

namespace {

// Checks the backward's extra inputs (out, dout like q; lse (B, H, T) float32) and returns
// delta = rowsum(dout ∘ out) and the contiguous lse, both float32.
std::tuple<at::Tensor, at::Tensor> backwardRowTerms(const at::Tensor& q, const at::Tensor& out, const at::Tensor& lse,
                                                    const at::Tensor& dout) {
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
    CHECK_SHAPE(out, B, H, T, D);
    CHECK_SHAPE(dout, B, H, T, D);
    CHECK_SHAPE(lse, B, H, T);
    TORCH_CHECK(out.device() == q.device() && dout.device() == q.device() && lse.device() == q.device(),
                "attention backward: out, dout and lse must be on ", q.device());
    TORCH_CHECK(dout.scalar_type() == q.scalar_type(), "attention backward: dout must be ", q.scalar_type(), ", got ",
                dout.scalar_type());
    TORCH_CHECK(lse.scalar_type() == at::kFloat, "attention backward: lse must be float32, got ", lse.scalar_type());
    CHECK_LAYOUT(dout);
    return {(dout.to(at::kFloat) * out.to(at::kFloat)).sum(-1).contiguous(), lse.contiguous()};
}

// The span backward kernel on checked inputs: dk, dv written (q's dtype), dq added into dqAccum.
void launchSpanBackward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& dout,
                        const at::Tensor& lse, const at::Tensor& delta, const SpanMask& mask, double scale,
                        at::Tensor& dqAccum, at::Tensor& dk, at::Tensor& dv) {
    auto p = launchParams<cuda::SpanAttentionBwdParams>(q, k, v, mask, scale);
    p.dout = dout.data_ptr();
    p.lse = lse.data_ptr<float>();
    p.delta = delta.data_ptr<float>();
    p.dk = dk.data_ptr();
    p.dv = dv.data_ptr();
    p.dqAccum = dqAccum.data_ptr<float>();
    p.dos = stridesOf(dout);
    cuda::span_attention_bwd_launch(p, at::cuda::getCurrentCUDAStream().stream());
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> span_attention_backward_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
    const at::Tensor& dout, const SpanMask& mask, double scale) {
    checkAttentionInputs(q, k, v, mask);
    const c10::cuda::CUDAGuard guard(q.device());
    auto [delta, lsec] = backwardRowTerms(q, out, lse, dout);
    auto dqAccum = at::zeros(q.sizes(), q.options().dtype(at::kFloat));
    auto dk = at::empty(q.sizes(), q.options()), dv = at::empty(q.sizes(), q.options());
    launchSpanBackward(q, k, v, dout, lsec, delta, mask, scale, dqAccum, dk, dv);
    return {dqAccum.to(q.scalar_type()), dk, dv};
}

AttentionStats span_attention_stats_from_lse_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& lse,
                                                  const SpanMask& mask, double scale,
                                                  const AttentionStatsOptions& options) {
    checkAttentionInputs(q, k, k, mask);
    TORCH_CHECK(q.size(0) == 1, "attention statistics: expected one sequence (B = 1), got ", q.sizes());
    const int64_t H = q.size(1), T = q.size(2);
    CHECK_SHAPE(lse, 1, H, T);
    TORCH_CHECK(lse.scalar_type() == at::kFloat && lse.is_contiguous() && lse.device() == q.device(),
                "attention statistics: lse must be a contiguous float32 tensor on ", q.device());
    TORCH_CHECK(options.poolSize >= 0 && options.poolSize <= 1024, "attention statistics: pool size must be in 0..1024, got ",
                options.poolSize);
    const int64_t mapQ0 = options.mapQ0, mapQ1 = options.mapQ1 < 0 ? T : options.mapQ1;
    const int64_t mapK0 = options.mapK0, mapK1 = options.mapK1 < 0 ? T : options.mapK1;
    TORCH_CHECK(0 <= mapQ0 && mapQ0 < mapQ1 && mapQ1 <= T && 0 <= mapK0 && mapK0 < mapK1 && mapK1 <= T,
                "attention map region [", mapQ0, ", ", mapQ1, ") x [", mapK0, ", ", mapK1, ") is not inside 0..", T);
    // (T + 1) * P: the kernels' bin arithmetic forms (b + 1) * len + P - 1 <= (T + 1) * P - 1 in 32 bits.
    TORCH_CHECK(options.poolSize == 0 || (T + 1) * options.poolSize < (int64_t{1} << 31),
                "attention statistics: (T + 1) * pool size must stay below 2^31, got T = ", T, ", P = ", options.poolSize);
    // The distance bins end at 2^(NB - 1): the kernels index bin distBin(d) <= NB - 1 for d < 2^(NB - 1).
    TORCH_CHECK(T <= (int64_t{1} << (kNumDistanceBins - 1)), "attention statistics: at most ",
                int64_t{1} << (kNumDistanceBins - 1), " tokens (the distance bins end there), got T = ", T);
    const c10::cuda::CUDAGuard guard(q.device());
    const int64_t Pq = std::min(options.poolSize, mapQ1 - mapQ0), Pk = std::min(options.poolSize, mapK1 - mapK0);
    auto d64 = q.options().dtype(at::kDouble), f32 = q.options().dtype(at::kFloat);
    // Two zeroed buffers (fewer launches: the pass is short for sparse layers), viewed as the fields.
    auto sums = at::zeros({H * (kNumDistanceBins + 4)}, d64);
    auto floats = at::zeros({2 * T + H * Pq * Pk}, f32);
    AttentionStats s;
    s.binMass = sums.narrow(0, 0, H * kNumDistanceBins).view({H, kNumDistanceBins});
    s.entropy = sums.narrow(0, H * kNumDistanceBins, H);
    s.distance = sums.narrow(0, H * (kNumDistanceBins + 1), H);
    s.beyondMass = sums.narrow(0, H * (kNumDistanceBins + 2), H);
    s.sinkMass = sums.narrow(0, H * (kNumDistanceBins + 3), H);
    s.beyondPerQuery = floats.narrow(0, 0, T);
    s.entropyPerQuery = floats.narrow(0, T, T);
    s.pooled = floats.narrow(0, 2 * T, H * Pq * Pk).view({H, Pq, Pk});
    cuda::SpanStatsParams p;
    p.q = q.data_ptr();
    p.k = k.data_ptr();
    p.lse = lse.data_ptr<float>();
    p.qs = stridesOf(q);
    p.ks = stridesOf(k);
    p.H = static_cast<int32_t>(H);
    p.T = static_cast<int32_t>(T);
    p.D = static_cast<int32_t>(q.size(3));
    p.scale = static_cast<float>(scale);
    p.mask = clampedMask(mask, T);
    p.elem = elemOf(q);
    p.beyondSpan = static_cast<int32_t>(std::clamp<int64_t>(options.beyondSpan, 0, std::numeric_limits<int32_t>::max()));
    p.sinkTokens = static_cast<int32_t>(std::clamp<int64_t>(options.sinkTokens, 0, T));
    p.Pq = static_cast<int32_t>(Pq);
    p.Pk = static_cast<int32_t>(Pk);
    p.mapQ0 = static_cast<int32_t>(mapQ0);
    p.mapQ1 = static_cast<int32_t>(mapQ1);
    p.mapK0 = static_cast<int32_t>(mapK0);
    p.mapK1 = static_cast<int32_t>(mapK1);
    p.binMass = s.binMass.data_ptr<double>();
    p.entropy = s.entropy.data_ptr<double>();
    p.distance = s.distance.data_ptr<double>();
    p.beyondMass = s.beyondMass.data_ptr<double>();
    p.sinkMass = s.sinkMass.data_ptr<double>();
    p.beyondPerQuery = s.beyondPerQuery.data_ptr<float>();
    p.entropyPerQuery = s.entropyPerQuery.data_ptr<float>();
    p.pooled = s.pooled.data_ptr<float>();
    // Exact rows: the kernel writes each wanted query's row into the slot of its first request;
    // repeated positions are copied afterwards.
    const int64_t R = static_cast<int64_t>(options.queryRows.size());
    s.rows = at::zeros({R, H, T}, f32);
    std::vector<int64_t> firstSlot(static_cast<size_t>(R));
    at::Tensor rowSlot;
    if (R > 0) {
        auto slotsCpu = at::full({T}, -1, at::TensorOptions().dtype(at::kInt)).pin_memory();
        int32_t* slots = slotsCpu.data_ptr<int32_t>();
        for (int64_t r = 0; r < R; ++r) {
            const int64_t pos = options.queryRows[static_cast<size_t>(r)];
            TORCH_CHECK(pos >= 0 && pos < T, "attention rows: query position ", pos, " is outside 0..", T - 1);
            if (slots[pos] < 0) slots[pos] = static_cast<int32_t>(r);
            firstSlot[static_cast<size_t>(r)] = slots[pos];
        }
        rowSlot = slotsCpu.to(q.device(), /*non_blocking=*/true);
        p.rowSlot = rowSlot.data_ptr<int32_t>();
        p.rows = s.rows.data_ptr<float>();
    }
    cuda::span_attention_stats_launch(p, at::cuda::getCurrentCUDAStream().stream());
    for (int64_t r = 0; r < R; ++r)
        if (firstSlot[static_cast<size_t>(r)] != r) s.rows[r].copy_(s.rows[firstSlot[static_cast<size_t>(r)]]);
    return s;
}

std::tuple<at::Tensor, at::Tensor, AttentionStats> span_attention_stats_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask, double scale,
    const AttentionStatsOptions& options) {
    TORCH_CHECK(q.dim() == 4 && q.size(0) == 1, "attention statistics: expected one sequence (B = 1), got ", q.sizes());
    auto [out, lse] = span_attention_cuda(q, k, v, mask, scale);
    return {out, lse, span_attention_stats_from_lse_cuda(q, k, lse, mask, scale, options)};
}

static_assert(kSparseKPlanBlockRows == cuda::kSparseKBlockRows, "the plan's blocks are the SparseK kernel's query tiles");

namespace {

// q, k, v as for the span kernels; u, the plan's tau and lse (B, H, T) contiguous float32 and the
// plan's lists contiguous int32, all on q's device; block_offsets sized for q's shape.
void checkSparseKInputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u,
                        const SparseKPlan& plan, int64_t window, const at::Tensor& lse) {
    checkAttentionInputs(q, k, v, SpanMask{MaskKind::Window, window, false});
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2);
    const int64_t NB = (T + kSparseKPlanBlockRows - 1) / kSparseKPlanBlockRows;
    CHECK_SHAPE(lse, B, H, T);
    CHECK_SHAPE(u, B, H, T);
    CHECK_SHAPE(plan.tau, B, H, T);
    TORCH_CHECK(plan.blockOffsets.dim() == 1 && plan.blockOffsets.size(0) == B * H * NB + 1,
                "sparsek attention: block_offsets must have B*H*ceil(T/", kSparseKPlanBlockRows, ") + 1 = ", B * H * NB + 1,
                " entries, got ", plan.blockOffsets.sizes());
    TORCH_CHECK(plan.blockKeys.dim() == 1, "sparsek attention: block_keys must be 1-D, got ", plan.blockKeys.sizes());
    for (const at::Tensor* t : {&u, &plan.tau, &lse})
        TORCH_CHECK(t->scalar_type() == at::kFloat && t->is_contiguous() && t->device() == q.device(),
                    "sparsek attention: u, tau and lse must be contiguous float32 tensors on ", q.device(), ", got ",
                    t->scalar_type(), " on ", t->device());
    for (const at::Tensor* t : {&plan.blockOffsets, &plan.blockKeys})
        TORCH_CHECK(t->scalar_type() == at::kInt && t->is_contiguous() && t->device() == q.device(),
                    "sparsek attention: block_offsets and block_keys must be contiguous int32 tensors on ", q.device(),
                    ", got ", t->scalar_type(), " on ", t->device());
}

// The fields the SparseK forward and backward launches share (inputs checked by checkSparseKInputs):
// qkvLaunchParams's, u, the plan and the window (clamped).
template <typename Params>
Params sparsekLaunchParams(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u,
                           const SparseKPlan& plan, int64_t window, double scale) {
    auto p = qkvLaunchParams<Params>(q, k, v, scale);
    p.u = u.data_ptr<float>();
    p.tau = plan.tau.data_ptr<float>();
    p.blockOffsets = plan.blockOffsets.data_ptr<int32_t>();
    p.blockKeys = plan.blockKeys.data_ptr<int32_t>();
    p.window = static_cast<int32_t>(std::min<int64_t>(window, q.size(2) + 1));
    return p;
}

}  // namespace

void sparsek_attention_planned_cuda_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u,
                                        const SparseKPlan& plan, int64_t window, double scale, at::Tensor& out,
                                        at::Tensor& lse) {
    checkSparseKInputs(q, k, v, u, plan, window, lse);
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
    CHECK_SHAPE(out, B, H, T, D);
    TORCH_CHECK(out.scalar_type() == q.scalar_type() && out.device() == q.device(),
                "sparsek attention: out must be ", q.scalar_type(), " on ", q.device());
    CHECK_LAYOUT(out);
    const c10::cuda::CUDAGuard guard(q.device());
    auto p = sparsekLaunchParams<cuda::SparseKAttentionFwdParams>(q, k, v, u, plan, window, scale);
    p.out = out.data_ptr();
    p.lse = lse.data_ptr<float>();
    p.os = stridesOf(out);
    cuda::sparsek_attention_fwd_launch(p, at::cuda::getCurrentCUDAStream().stream());
}

SparseKPlan sparsek_plan_cuda(const at::Tensor& u, double topK, int64_t window) {
    TORCH_CHECK(u.dim() == 3 && u.is_cuda(), "sparsek plan: key scores u must be (B, H, T) on a CUDA device, got ", u.sizes(),
                " on ", u.device());
    TORCH_CHECK(topK >= 0 && window >= 1, "sparsek plan: need k >= 0 and w >= 1, got k = ", topK, ", w = ", window);
    const int64_t B = u.size(0), H = u.size(1), T = u.size(2), BH = B * H;
    const int64_t NB = (T + kSparseKPlanBlockRows - 1) / kSparseKPlanBlockRows;
    // The host plans what the GPU kernel cannot: nothing selected, no work, a budget beyond the
    // kernel's active-set capacity (it would overflow), more (b, h) than a grid dimension holds.
    if (topK == 0 || topK >= cuda::kSparseKPlanCapacity || BH == 0 || T == 0 || BH >= 65536)
        return sparsek_plan(u, topK, window, kSparseKPlanBlockRows, u.device());
    TORCH_CHECK(T < (int64_t{1} << 30), "sparsek plan: too long: ", u.sizes());
    const c10::cuda::CUDAGuard guard(u.device());
    auto uf = u.to(at::kFloat).contiguous();
    TORCH_CHECK(!(at::isnan(uf) | at::isposinf(uf)).any().item<bool>(),
                "sparsek plan: key scores contain NaN or +inf (NaN and +inf are not scores)");
    const int64_t segBlocks = cuda::kSparseKPlanSegmentBlocks, nSeg = (NB + segBlocks - 1) / segBlocks;
    const int64_t region = segBlocks * (cuda::kSparseKPlanCapacity + kSparseKPlanBlockRows);
    auto i32 = uf.options().dtype(at::kInt);
    SparseKPlan plan;
    plan.tau = at::empty({B, H, T}, uf.options());
    auto counts = at::zeros({BH, NB}, i32);
    auto keys = at::empty({BH * nSeg, region}, i32);
    auto selected = at::zeros({BH}, uf.options().dtype(at::kLong));
    auto overflow = at::zeros({1}, i32);
    cuda::SparseKPlanParams p;
    p.u = uf.data_ptr<float>();
    p.tau = plan.tau.data_ptr<float>();
    p.blockCounts = counts.data_ptr<int32_t>();
    p.keys = keys.data_ptr<int32_t>();
    p.regionSize = region;
    p.selected = reinterpret_cast<unsigned long long*>(selected.data_ptr<int64_t>());
    p.overflow = overflow.data_ptr<int32_t>();
    p.BH = static_cast<int32_t>(BH);
    p.T = static_cast<int32_t>(T);
    p.window = static_cast<int32_t>(std::min<int64_t>(window, T + 1));
    p.topK = topK;
    cuda::sparsek_plan_launch(p, at::cuda::getCurrentCUDAStream().stream());
    if (overflow.item<int32_t>() != 0) return sparsek_plan(u, topK, window, kSparseKPlanBlockRows, u.device());
    // Each (b, h, segment) wrote its blocks' lists back to back in its own region: one CSR of them.
    auto lengths = counts.flatten().to(at::kLong);
    const int64_t total = lengths.sum().item<int64_t>();
    TORCH_CHECK(total < std::numeric_limits<int32_t>::max(), "sparsek plan: ", total,
                " key-list entries do not fit int32 offsets (shorter documents or fewer heads per call)");
    plan.blockOffsets = at::cat({at::zeros({1}, lengths.options()), lengths.cumsum(0)}).to(at::kInt);
    auto segTotals = at::constant_pad_nd(counts, {0, nSeg * segBlocks - NB}).view({BH * nSeg, segBlocks}).sum(1).to(at::kLong);
    plan.blockKeys = keys.masked_select(at::arange(region, segTotals.options()).unsqueeze(0) < segTotals.unsqueeze(1));
    plan.selectedPairs = selected.sum().item<int64_t>();
    plan.windowPairs = BH * sparsek_window_pairs(T, window);
    return plan;
}

std::tuple<at::Tensor, at::Tensor> sparsek_attention_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                          const at::Tensor& u, double topK, int64_t window, double scale) {
    checkAttentionInputs(q, k, v, SpanMask{MaskKind::Window, window, false});
    CHECK_SHAPE(u, q.size(0), q.size(1), q.size(2));
    TORCH_CHECK(u.device() == q.device(), "sparsek attention: u must be on ", q.device(), ", got ", u.device());
    const at::Tensor uf = u.to(at::kFloat).contiguous();  // what the plan and the kernel read
    return sparsek_attention_planned_cuda(q, k, v, uf, sparsek_plan_cuda(uf, topK, window), window, scale);
}

std::tuple<at::Tensor, at::Tensor> sparsek_attention_planned_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                                  const at::Tensor& u, const SparseKPlan& plan,
                                                                  int64_t window, double scale) {
    TORCH_CHECK(q.dim() == 4, "sparsek attention: q must be (B, H, T, D), got ", q.sizes());
    auto [out, lse] = emptyOutputs(q);
    sparsek_attention_planned_cuda_out(q, k, v, u, plan, window, scale, out, lse);
    return {out, lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> sparsek_attention_backward_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u, const SparseKPlan& plan,
    const at::Tensor& out, const at::Tensor& lse, const at::Tensor& dout, double topK, int64_t window, double scale) {
    checkSparseKInputs(q, k, v, u, plan, window, lse);
    TORCH_CHECK(topK >= 0, "sparsek attention backward: k must be non-negative, got ", topK);
    const c10::cuda::CUDAGuard guard(q.device());
    auto [delta, lsec] = backwardRowTerms(q, out, lse, dout);
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2);
    auto f32 = q.options().dtype(at::kFloat);
    auto dqAccum = at::empty(q.sizes(), f32);  // every row written by the gathered part
    auto dkAccum = at::zeros(q.sizes(), f32), dvAccum = at::zeros(q.sizes(), f32);
    auto du = at::zeros({B, H, T}, f32);
    auto p = sparsekLaunchParams<cuda::SparseKAttentionBwdParams>(q, k, v, u, plan, window, scale);
    p.dout = dout.data_ptr();
    p.lse = lsec.data_ptr<float>();
    p.delta = delta.data_ptr<float>();
    p.dqAccum = dqAccum.data_ptr<float>();
    p.dkAccum = dkAccum.data_ptr<float>();
    p.dvAccum = dvAccum.data_ptr<float>();
    p.du = du.data_ptr<float>();
    p.dos = stridesOf(dout);
    p.topK = topK;
    cuda::sparsek_attention_bwd_launch(p, at::cuda::getCurrentCUDAStream().stream());
    // The window keys (m = 1): the span backward with the SparseK forward's lse and delta.
    auto dk = at::empty(q.sizes(), q.options()), dv = at::empty(q.sizes(), q.options());
    launchSpanBackward(q, k, v, dout, lsec, delta, SpanMask{MaskKind::Window, window, false}, scale, dqAccum, dk, dv);
    dkAccum += dk;
    dvAccum += dv;
    return {dqAccum.to(q.scalar_type()), dkAccum.to(q.scalar_type()), dvAccum.to(q.scalar_type()), du};
}

// ---- torch operators ----------------------------------------------------------------------------
namespace {

SpanMask maskFromArgs(c10::string_view kind, int64_t span, bool prevBlock) {
    SpanMask m;
    const std::string k(kind.data(), kind.size());
    if (k == "full") m.kind = MaskKind::Full;
    else if (k == "window") m.kind = MaskKind::Window;
    else if (k == "block") m.kind = MaskKind::Block;
    else TORCH_CHECK(false, "span attention: mask kind must be 'full', 'window' or 'block', got '", k, "'");
    m.span = span;
    m.prevBlock = prevBlock;
    return m;
}

using StatsTuple = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                              at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

StatsTuple packStats(const at::Tensor& out, const at::Tensor& lse, const AttentionStats& s) {
    return {out, lse, s.binMass, s.entropy, s.distance, s.beyondMass, s.sinkMass, s.beyondPerQuery, s.entropyPerQuery,
            s.pooled, s.rows};
}

AttentionStatsOptions statsOptions(int64_t beyondSpan, int64_t sinkTokens, int64_t poolSize, c10::IntArrayRef rows) {
    AttentionStatsOptions o;
    o.beyondSpan = beyondSpan;
    o.sinkTokens = sinkTokens;
    o.poolSize = poolSize;
    o.queryRows.assign(rows.begin(), rows.end());
    return o;
}

std::tuple<at::Tensor, at::Tensor> opAttentionCuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                   c10::string_view kind, int64_t span, bool prevBlock, double scale) {
    return span_attention_cuda(q, k, v, maskFromArgs(kind, span, prevBlock), scale);
}
std::tuple<at::Tensor, at::Tensor> opAttentionCpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                  c10::string_view kind, int64_t span, bool prevBlock, double scale) {
    return span_attention_cpu(q, k, v, maskFromArgs(kind, span, prevBlock), scale);
}
using GradTuple = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
GradTuple opBackwardCuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                         const at::Tensor& lse, const at::Tensor& dout, c10::string_view kind, int64_t span, bool prevBlock,
                         double scale) {
    return span_attention_backward_cuda(q, k, v, out, lse, dout, maskFromArgs(kind, span, prevBlock), scale);
}
GradTuple opBackwardCpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                        const at::Tensor& lse, const at::Tensor& dout, c10::string_view kind, int64_t span, bool prevBlock,
                        double scale) {
    return span_attention_backward_cpu(q, k, v, out, lse, dout, maskFromArgs(kind, span, prevBlock), scale);
}
StatsTuple opStatsCuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, c10::string_view kind, int64_t span,
                       bool prevBlock, double scale, int64_t beyondSpan, int64_t sinkTokens, int64_t poolSize,
                       c10::IntArrayRef rows) {
    auto [out, lse, s] = span_attention_stats_cuda(q, k, v, maskFromArgs(kind, span, prevBlock), scale,
                                                   statsOptions(beyondSpan, sinkTokens, poolSize, rows));
    return packStats(out, lse, s);
}
StatsTuple opStatsCpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, c10::string_view kind, int64_t span,
                      bool prevBlock, double scale, int64_t beyondSpan, int64_t sinkTokens, int64_t poolSize,
                      c10::IntArrayRef rows) {
    auto [out, lse, s] = span_attention_stats_cpu(q, k, v, maskFromArgs(kind, span, prevBlock), scale,
                                                  statsOptions(beyondSpan, sinkTokens, poolSize, rows));
    return packStats(out, lse, s);
}

std::tuple<at::Tensor, at::Tensor> opSparseKCuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                 const at::Tensor& u, double topK, int64_t window, double scale) {
    return sparsek_attention_cuda(q, k, v, u, topK, window, scale);
}
// The CPU reference takes one sequence at a time.
std::tuple<at::Tensor, at::Tensor> opSparseKCpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                const at::Tensor& u, double topK, int64_t window, double scale) {
    TORCH_CHECK(q.dim() == 4 && u.dim() == 3 && u.size(0) == q.size(0), "sparsek attention: q must be (B, H, T, D) and u (B, H, T), got ",
                q.sizes(), " and ", u.sizes());
    std::vector<at::Tensor> outs, lses;
    for (int64_t b = 0; b < q.size(0); ++b) {
        auto [o, l] = sparsek_attention_aten(q.narrow(0, b, 1), k.narrow(0, b, 1), v.narrow(0, b, 1), u.narrow(0, b, 1),
                                             topK, window, scale);
        outs.push_back(o);
        lses.push_back(l);
    }
    return {at::cat(outs, 0), at::cat(lses, 0)};
}
using PlanTuple = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
PlanTuple packPlan(const SparseKPlan& p) {
    return {p.tau, p.blockOffsets, p.blockKeys, at::tensor({p.selectedPairs, p.windowPairs}, at::kLong)};
}
PlanTuple opSparseKPlanCpu(const at::Tensor& u, double topK, int64_t window) {
    return packPlan(sparsek_plan(u, topK, window, kSparseKPlanBlockRows, u.device()));
}
PlanTuple opSparseKPlanCuda(const at::Tensor& u, double topK, int64_t window) {
    return packPlan(sparsek_plan_cuda(u, topK, window));
}
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> opSparseKBackwardCuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u, const at::Tensor& tau,
    const at::Tensor& blockOffsets, const at::Tensor& blockKeys, const at::Tensor& out, const at::Tensor& lse,
    const at::Tensor& dout, double topK, int64_t window, double scale) {
    const SparseKPlan plan{tau, blockOffsets, blockKeys};
    return sparsek_attention_backward_cuda(q, k, v, u, plan, out, lse, dout, topK, window, scale);
}
std::tuple<at::Tensor, at::Tensor> opSparseKPlannedCuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                        const at::Tensor& u, const at::Tensor& tau,
                                                        const at::Tensor& blockOffsets, const at::Tensor& blockKeys,
                                                        int64_t window, double scale) {
    const SparseKPlan plan{tau, blockOffsets, blockKeys};
    return sparsek_attention_planned_cuda(q, k, v, u, plan, window, scale);
}

}  // namespace

TORCH_LIBRARY(spanscope, m) {
    m.def("span_attention(Tensor q, Tensor k, Tensor v, str kind, int span, bool prev_block, float scale) -> (Tensor, Tensor)");
    m.def("span_attention_stats(Tensor q, Tensor k, Tensor v, str kind, int span, bool prev_block, float scale, "
          "int beyond_span, int sink_tokens, int pool_size, int[] query_rows) -> "
          "(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
    m.def("span_attention_backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dout, str kind, int span, "
          "bool prev_block, float scale) -> (Tensor, Tensor, Tensor)");
    m.def("sparsek_attention(Tensor q, Tensor k, Tensor v, Tensor u, float top_k, int window, float scale) -> (Tensor, Tensor)");
    m.def("sparsek_plan(Tensor u, float top_k, int window) -> (Tensor, Tensor, Tensor, Tensor)");
    m.def("sparsek_attention_planned(Tensor q, Tensor k, Tensor v, Tensor u, Tensor tau, Tensor block_offsets, "
          "Tensor block_keys, int window, float scale) -> (Tensor, Tensor)");
    m.def("sparsek_attention_backward(Tensor q, Tensor k, Tensor v, Tensor u, Tensor tau, Tensor block_offsets, "
          "Tensor block_keys, Tensor out, Tensor lse, Tensor dout, float top_k, int window, float scale) -> "
          "(Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(spanscope, CUDA, m) {
    m.impl("span_attention", &opAttentionCuda);
    m.impl("span_attention_stats", &opStatsCuda);
    m.impl("span_attention_backward", &opBackwardCuda);
    m.impl("sparsek_attention", &opSparseKCuda);
    m.impl("sparsek_plan", &opSparseKPlanCuda);
    m.impl("sparsek_attention_planned", &opSparseKPlannedCuda);
    m.impl("sparsek_attention_backward", &opSparseKBackwardCuda);
}

TORCH_LIBRARY_IMPL(spanscope, CPU, m) {
    m.impl("span_attention", &opAttentionCpu);
    m.impl("span_attention_stats", &opStatsCpu);
    m.impl("span_attention_backward", &opBackwardCpu);
    m.impl("sparsek_attention", &opSparseKCpu);
    m.impl("sparsek_plan", &opSparseKPlanCpu);
}

}  // namespace spanscope
