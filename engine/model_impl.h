// Internal: the model's tensors and forward pass (LibTorch). Only engine .cpp files include this.
//
// Shapes: T tokens, C hidden size, H heads, Hkv key/value heads, D head dim, I MLP size, V vocab.
// Weights follow the Llama naming in model.safetensors (see weights.cpp).
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/pattern.h"

namespace spanscope {

struct LayerWeights {
    at::Tensor inputNorm;  // (C)
    at::Tensor wq;         // (H·D, C)
    at::Tensor wk, wv;     // (Hkv·D, C)
    at::Tensor wo;         // (C, H·D)
    at::Tensor postNorm;   // (C)
    at::Tensor wGate, wUp; // (I, C)
    at::Tensor wDown;      // (C, I)
    // SparseK layers only: the scoring network, per head a vector over the head's value vector and
    // a recency slope, u_j = w_h · v_j + β_h · j (values carry no rotary phase, so the position
    // enters only through β; only differences of u matter, so j counts from any origin); undefined
    // elsewhere.
    at::Tensor sparsekScore;     // (H, D) w_h
    at::Tensor sparsekPosition;  // (H) β_h
};

struct ModelImpl {
    ModelConfig config;
    std::string directory;
    at::Device device{at::kCPU};
    at::ScalarType computeType = at::kFloat;
    at::Tensor embed;      // (V, C)
    at::Tensor finalNorm;  // (C)
    at::Tensor lmHead;     // (V, C); undefined when tied to embed
    std::vector<LayerWeights> layers;
    std::shared_ptr<const Tokenizer> tokenizer;

    const at::Tensor& outputEmbedding() const { return lmHead.defined() ? lmHead : embed; }
    // Every parameter with its safetensors name, in a fixed order.
    std::vector<std::pair<std::string, at::Tensor*>> namedParameters();
};

// Attention of one layer: q, k, v (B, H, T, D) after rotary -> output (B, H, T, D); the analysis
// runs one document (B = 1), training a batch of sequences.
using AttentionFn = std::function<at::Tensor(int layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v)>;

// The default attention for a pattern: SDPA for full layers on CUDA, spanscope's kernels for
// window/block layers on CUDA, blocked span attention otherwise; SparseK layers through
// sparsek_attention_aten with the layer's key scores (sparsekKeyScores). `m` must outlive the result.
AttentionFn patternAttention(const LayerPattern& pattern, const ModelImpl& m);

// SparseK key scores u_j = w_h · v_j + β_h · j of layer `layer` (the layer's scoring network;
// j = 0..T-1), in float32; v: (B, H, T, D) -> (B, H, T). Throws InputError when the model has no
// scoring network there (it was not trained with a sparsek layer at that place).
at::Tensor sparsekKeyScores(const ModelImpl& m, int layer, const at::Tensor& v);

// Runs layers [firstLayer, lastLayer) on hidden states x (B, T, C) starting at position 0;
// `afterLayer(l, x)` (optional) sees the hidden state after each layer. Throws Cancelled if
// `cancelled` returns true between layers.
at::Tensor runLayers(const ModelImpl& m, at::Tensor x, int firstLayer, int lastLayer, const AttentionFn& attention,
                     const std::function<bool()>& cancelled = {},
                     const std::function<void(int, const at::Tensor&)>& afterLayer = {});

at::Tensor embedTokens(const ModelImpl& m, const std::vector<int32_t>& tokens);  // (1, T, C)
// Per-token next-token loss (nats): hidden (1, T, C) -> (T-1) float32 on CPU; logits in chunks.
at::Tensor nextTokenLoss(const ModelImpl& m, const at::Tensor& hidden, const std::vector<int32_t>& tokens);
// Logits (1, T, V) float32 — for tests and small inputs.
at::Tensor logits(const ModelImpl& m, const at::Tensor& hidden);

}  // namespace spanscope
