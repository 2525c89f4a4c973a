// Attention cost model: what a layer pattern costs on a document of n tokens.
//
// Per layer, with H heads of dimension d and e bytes per element:
//   pairs      exact attended (query, key) pairs of the causal pattern (LayerSpec::attendedPairs)
//   flops      4·d·pairs per head (QKᵀ and PV, a multiply-add counted as 2)
//   bytes      what a tiled kernel moves: Q read and O written once (2·n·H·d·e) plus, for every
//              tile of `tileQ` queries, the K and V rows its queries can reach (2·keys·H·d·e);
//              sparsek adds the tile's gathered rows: its queries' selections together, at most
//              k + tileQ keys (a key that leaves the top-k never returns) and at most k·tileQ
//   kvCache    K and V a generator must keep after n tokens: full n, window w, block b (2b with
//              the previous block), sparsek k + w — times 2·H·d·e
// relativeCost C = pairs of the pattern / pairs of the same model with every layer full: the
// MASFormer paper's l/L + (1 − l/L)·b/n for a block pattern. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/pattern.h"

namespace spanscope {

struct CostParams {
    int64_t tokens = 0;
    int64_t heads = 1;
    int64_t headDim = 64;
    int64_t bytesPerElement = 2;  // bf16
    int64_t tileQ = 128;
};

struct LayerCost {
    int64_t pairs = 0;
    double flops = 0;
    double bytes = 0;
    double kvCacheBytes = 0;
    double shareOfFull = 0;  // this layer's pairs / a full layer's pairs
};

struct CostSummary {
    std::vector<LayerCost> layers;
    int64_t pairs = 0;
    int64_t fullPairsPerLayer = 0;
    double flops = 0;
    double bytes = 0;
    double kvCacheBytes = 0;
    double fullFlops = 0;       // the all-full pattern's flops
    double fullKvCacheBytes = 0;
    double relativeCost = 0;    // C
};

LayerCost layerCost(const LayerSpec& spec, const CostParams& p);
CostSummary patternCost(const LayerPattern& pattern, const CostParams& p);

// The paper's closed form C = l/L + (1 − l/L)·span/n (an approximation of the exact ratio).
double masformerClosedFormCost(int numLayers, int boundary, int64_t span, int64_t tokens);

}  // namespace spanscope
