// Forward pass of the mixed-span transformer (pre-norm, rotary, SwiGLU, tied embeddings).
#include "engine/model_impl.h"

#include <cmath>

#include "engine/errors.h"
#include "kernels/attention_cpu.h"
#ifdef SPANSCOPE_HAVE_CUDA
#include "kernels/ops.h"
#endif

namespace spanscope {
namespace {

at::Tensor rmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
    auto xf = x.to(at::kFloat);
    auto normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
    return (normed * weight.to(at::kFloat)).to(x.scalar_type());
}

// cos, sin tables (T, D) for rotary positions, Llama's half-split layout; angles in fp64.
std::pair<at::Tensor, at::Tensor> rotaryTables(int64_t T, int64_t D, double theta, const at::TensorOptions& o) {
    auto opt64 = at::TensorOptions().dtype(at::kDouble).device(o.device());
    auto invFreq = at::pow(theta, at::arange(0, D, 2, opt64) / static_cast<double>(D)).reciprocal();  // (D/2)
    auto angles = at::outer(at::arange(T, opt64), invFreq);                                          // (T, D/2)
    auto emb = at::cat({angles, angles}, -1);
    return {emb.cos().to(o.dtype()), emb.sin().to(o.dtype())};
}

at::Tensor rotateHalf(const at::Tensor& x) {
    auto halves = x.chunk(2, -1);
    return at::cat({halves[1].neg(), halves[0]}, -1);
}

at::Tensor applyRotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    return x * cos + rotateHalf(x) * sin;  // x (1, H, T, D); cos/sin (T, D) broadcast
}

}  // namespace

#ifdef SPANSCOPE_HAVE_CUDA
// Full causal layers: SDPA (cuDNN). On the H100 our wgmma forward reaches 0.83-0.96x of it at d = 128
// and 0.87-1.03x at d = 64 (parity only from 16k tokens; bench/RESULTS.md, 2026-11-24), so SDPA stays.
constexpr bool kOwnKernelForFullLayers = false;
#endif

at::Tensor sparsekKeyScores(const ModelImpl& m, int layer, const at::Tensor& v) {
    const LayerWeights& lw = m.layers.at(static_cast<size_t>(layer));
    const at::Tensor& w = lw.sparsekScore;  // (H, D)
    if (!w.defined())
        throw InputError("layer " + std::to_string(layer) + ": sparsek needs a scoring network, and this model has none "
                         "at that layer (train or continue training it with a sparsek pattern there first)");
    // In float32: the recency term grows with j, and bf16 would round it to steps of 32 at j = 8k.
    auto u = (v.to(at::kFloat) * w.to(at::kFloat).unsqueeze(0).unsqueeze(2)).sum(-1);
    if (!lw.sparsekPosition.defined()) return u;
    auto j = at::arange(v.size(2), u.options());
    return u + lw.sparsekPosition.to(at::kFloat).view({1, -1, 1}) * j.view({1, 1, -1});
}

AttentionFn patternAttention(const LayerPattern& pattern, const ModelImpl& m) {
    return [pattern, &m](int layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
        const LayerSpec& spec = pattern.layers.at(static_cast<size_t>(layer));
        const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
        if (spec.kind == AttentionKind::SparseK) {
            const at::Tensor u = sparsekKeyScores(m, layer, v);
#ifdef SPANSCOPE_HAVE_CUDA
            // The fused kernel (host-planned selection, gathered keys) on CUDA.
            if (q.is_cuda() && span_attention_cuda_supports(q, k, v))
                return std::get<0>(sparsek_attention_cuda(q, k, v, u, static_cast<double>(spec.topK), spec.span, scale));
#endif
            return std::get<0>(sparsek_attention_aten(q, k, v, u, static_cast<double>(spec.topK), spec.span, scale));
        }
#ifdef SPANSCOPE_HAVE_CUDA
        // Our kernel for window/block layers (and full ones: see bench/RESULTS.md for the SDPA race).
        if (q.is_cuda() && (spec.kind != AttentionKind::Full || kOwnKernelForFullLayers) &&
            span_attention_cuda_supports(q, k, v))
            return std::get<0>(span_attention_cuda(q, k, v, spec.mask(), scale));
#endif
        if (spec.kind == AttentionKind::Full && q.is_cuda())
            return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
        return std::get<0>(span_attention_cpu(q, k, v, spec.mask(), scale));
    };
}

at::Tensor embedTokens(const ModelImpl& m, const std::vector<int32_t>& tokens) {
    for (size_t i = 0; i < tokens.size(); ++i)
        if (tokens[i] < 0 || tokens[i] >= m.config.vocabSize)
            throw InputError("token " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                             " is outside the model's vocabulary of " + std::to_string(m.config.vocabSize) +
                             " (tokenizer and model do not match?)");
    auto ids = at::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()), at::kLong).to(m.device);
    return at::embedding(m.embed, ids).unsqueeze(0);
}

at::Tensor runLayers(const ModelImpl& m, at::Tensor x, int firstLayer, int lastLayer, const AttentionFn& attention,
                     const std::function<bool()>& cancelled,
                     const std::function<void(int, const at::Tensor&)>& afterLayer) {
    const auto& c = m.config;
    const int64_t B = x.size(0), T = x.size(1), H = c.numHeads, Hkv = c.numKvHeads, D = c.headDim();
    auto [cos, sin] = rotaryTables(T, D, c.ropeTheta, x.options());
    for (int l = firstLayer; l < lastLayer; ++l) {
        if (cancelled && cancelled()) throw Cancelled();
        const LayerWeights& w = m.layers.at(static_cast<size_t>(l));
        auto h = rmsNorm(x, w.inputNorm, c.normEps);
        auto q = at::linear(h, w.wq).view({B, T, H, D}).transpose(1, 2);
        auto k = at::linear(h, w.wk).view({B, T, Hkv, D}).transpose(1, 2);
        auto v = at::linear(h, w.wv).view({B, T, Hkv, D}).transpose(1, 2);
        q = applyRotary(q, cos, sin).contiguous();
        k = applyRotary(k, cos, sin);
        if (Hkv != H) {
            k = k.repeat_interleave(H / Hkv, 1);
            v = v.repeat_interleave(H / Hkv, 1);
        }
        auto a = attention(l, q, k.contiguous(), v.contiguous());  // (B, H, T, D)
        x = x + at::linear(a.transpose(1, 2).reshape({B, T, H * D}), w.wo);
        h = rmsNorm(x, w.postNorm, c.normEps);
        x = x + at::linear(at::silu(at::linear(h, w.wGate)) * at::linear(h, w.wUp), w.wDown);
        if (afterLayer) afterLayer(l, x);
    }
    return x;
}

at::Tensor logits(const ModelImpl& m, const at::Tensor& hidden) {
    auto h = rmsNorm(hidden, m.finalNorm, m.config.normEps);
    return at::linear(h, m.outputEmbedding()).to(at::kFloat);
}

at::Tensor nextTokenLoss(const ModelImpl& m, const at::Tensor& hidden, const std::vector<int32_t>& tokens) {
    const int64_t T = hidden.size(1);
    TORCH_CHECK(static_cast<int64_t>(tokens.size()) == T, "nextTokenLoss: hidden/token length mismatch");
    auto h = rmsNorm(hidden[0], m.finalNorm, m.config.normEps);
    auto targets = at::tensor(std::vector<int64_t>(tokens.begin() + 1, tokens.end()), at::kLong).to(m.device);
    auto loss = at::empty({T - 1}, at::TensorOptions().dtype(at::kFloat).device(m.device));
    constexpr int64_t kChunk = 2048;  // bounds the (chunk, V) logits block
    for (int64_t t0 = 0; t0 < T - 1; t0 += kChunk) {
        int64_t t1 = std::min(T - 1, t0 + kChunk);
        auto lg = at::linear(h.slice(0, t0, t1), m.outputEmbedding()).to(at::kFloat);
        auto lp = at::log_softmax(lg, -1);
        loss.slice(0, t0, t1).copy_(lp.gather(1, targets.slice(0, t0, t1).unsqueeze(1)).squeeze(1).neg());
    }
    return loss.cpu();
}

}  // namespace spanscope
