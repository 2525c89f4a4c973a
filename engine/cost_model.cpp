#include "engine/cost_model.h"

#include <algorithm>

#include "engine/errors.h"

namespace spanscope {

static int64_t kvRowsKept(const LayerSpec& spec, int64_t n) {
    switch (spec.kind) {
        case AttentionKind::Full: return n;
        case AttentionKind::Window: return std::min(n, spec.span);
        case AttentionKind::Block: return std::min(n, spec.prevBlock ? 2 * spec.span : spec.span);
        case AttentionKind::SparseK: return std::min(n, spec.span + spec.topK);
    }
    return n;
}

LayerCost layerCost(const LayerSpec& spec, const CostParams& p) {
    if (p.tokens < 0 || p.heads <= 0 || p.headDim <= 0 || p.bytesPerElement <= 0 || p.tileQ <= 0)
        throw InputError("cost model: tokens, heads, head dim, bytes per element and tile must be positive");
    LayerCost c;
    const double hd = static_cast<double>(p.heads) * static_cast<double>(p.headDim);
    c.pairs = spec.attendedPairs(p.tokens);
    c.flops = 4.0 * static_cast<double>(p.headDim) * static_cast<double>(c.pairs) * static_cast<double>(p.heads);
    double keyRows = 0;
    for (int64_t q0 = 0; q0 < p.tokens; q0 += p.tileQ) {
        int64_t q1 = std::min(p.tokens, q0 + p.tileQ);
        keyRows += static_cast<double>(q1 - spec.firstKey(q0));
        if (spec.kind == AttentionKind::SparseK) {
            // Candidates of the tile's last query: keys 0..q1-1-w.
            const int64_t candidates = std::max<int64_t>(0, q1 - spec.span);
            const int64_t rows = q1 - q0;
            keyRows += static_cast<double>(std::min({candidates, spec.topK + rows, spec.topK * rows}));
        }
    }
    c.bytes = (2.0 * static_cast<double>(p.tokens) + 2.0 * keyRows) * hd * static_cast<double>(p.bytesPerElement);
    c.kvCacheBytes = 2.0 * static_cast<double>(kvRowsKept(spec, p.tokens)) * hd * static_cast<double>(p.bytesPerElement);
    int64_t fullPairs = LayerSpec::full().attendedPairs(p.tokens);
    c.shareOfFull = fullPairs > 0 ? static_cast<double>(c.pairs) / static_cast<double>(fullPairs) : 0.0;
    return c;
}

CostSummary patternCost(const LayerPattern& pattern, const CostParams& p) {
    CostSummary s;
    LayerCost full = layerCost(LayerSpec::full(), p);
    s.fullPairsPerLayer = full.pairs;
    for (const auto& spec : pattern.layers) {
        LayerCost c = spec == LayerSpec::full() ? full : layerCost(spec, p);
        s.pairs += c.pairs;
        s.flops += c.flops;
        s.bytes += c.bytes;
        s.kvCacheBytes += c.kvCacheBytes;
        s.fullFlops += full.flops;
        s.fullKvCacheBytes += full.kvCacheBytes;
        s.layers.push_back(c);
    }
    const double allFull = static_cast<double>(full.pairs) * static_cast<double>(pattern.layers.size());
    s.relativeCost = allFull > 0 ? static_cast<double>(s.pairs) / allFull : 0.0;
    return s;
}

double masformerClosedFormCost(int numLayers, int boundary, int64_t span, int64_t tokens) {
    if (numLayers <= 0 || tokens <= 0) throw InputError("cost model: layers and tokens must be positive");
    double f = static_cast<double>(boundary) / numLayers;
    return f + (1.0 - f) * std::min(1.0, static_cast<double>(span) / static_cast<double>(tokens));
}

}  // namespace spanscope
