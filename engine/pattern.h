// Layer attention patterns: which keys each query may attend to, per layer.
//
// A LayerSpec is one layer's rule. All rules are causal (key j <= query i) and:
//   full     every j <= i
//   window   0 <= i - j < span                        (span = w)
//   block    floor(i/b) == floor(j/b), or, with prevBlock, also floor(j/b) == floor(i/b) - 1
//   sparsek  a local window of `span` plus `topK` keys selected by a learned score (SparseK)
// A LayerPattern is one spec per layer, bottom layer first.
//
// Text form (CLI): comma-separated items `kind[:arg]` with an optional `*count`; counts must add
// up to the number of layers, and a single item without a count fills every layer:
//   full*4,window:512*8     block:1024+prev     sparsek:64/256 (k/w)    full
// MASFormer shorthand: `masformer:L_FULL,KIND:SPAN` — the bottom L_FULL layers full, the rest KIND:
//   masformer:4,block:1024
// JSON form: either a list of specs [{"kind":"window","span":512}, ...] or the shorthand object
//   {"boundary": 4, "sparse": {"kind": "block", "span": 1024, "prev_block": true}}.
// Invalid input throws InputError naming the offending item. Plain value types; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kernels/span_mask.h"

namespace spanscope {

enum class AttentionKind { Full, Window, Block, SparseK };

const char* attentionKindName(AttentionKind kind);

struct LayerSpec {
    AttentionKind kind = AttentionKind::Full;
    int64_t span = 0;        // window: w; block: b; sparsek: local window w
    bool prevBlock = false;  // block only
    int64_t topK = 0;        // sparsek only

    static LayerSpec full() { return {}; }
    static LayerSpec window(int64_t w) { return {AttentionKind::Window, w, false, 0}; }
    static LayerSpec block(int64_t b, bool prev = false) { return {AttentionKind::Block, b, prev, 0}; }
    static LayerSpec sparseK(int64_t k, int64_t w) { return {AttentionKind::SparseK, w, false, k}; }

    // The static mask of this layer (for sparsek: its local window).
    SpanMask mask() const;
    // Whether query i may attend key j under the static part of the rule (for sparsek: the local
    // window only; the selected keys depend on the data).
    bool allows(int64_t i, int64_t j) const;
    // First key query i may attend (static part). Non-decreasing in i.
    int64_t firstKey(int64_t i) const;
    // Number of keys query i attends (static part).
    int64_t keysFor(int64_t i) const;
    // Exact number of attended (query, key) pairs for a causal sequence of n tokens.
    int64_t attendedPairs(int64_t n) const;
    // The span a layer of this kind can reach back (for "mass beyond span"); full: 0 = unlimited.
    int64_t reach() const;
    std::string text() const;  // canonical text form, e.g. "window:512"
    bool operator==(const LayerSpec& o) const;
    bool operator!=(const LayerSpec& o) const { return !(*this == o); }
};

struct LayerPattern {
    std::vector<LayerSpec> layers;

    // Number of full layers counted from the bottom before the first non-full layer.
    int boundary() const;
    // The first non-full spec (the sparse kind of a MASFormer pattern); full() if none.
    LayerSpec sparseSpec() const;
    std::string text() const;  // compact text form with runs merged, e.g. "full*4,window:512*8"
    nlohmann::json toJson() const;
    bool operator==(const LayerPattern& o) const { return layers == o.layers; }
};

LayerSpec parseLayerSpec(std::string_view text);
LayerPattern parsePattern(std::string_view text, int numLayers);
LayerPattern patternFromJson(const nlohmann::json& j, int numLayers);
LayerPattern masformerPattern(int numLayers, int boundary, const LayerSpec& sparse);

}  // namespace spanscope
