#include "engine/analysis_json.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace spanscope {

const char* const kSpanscopeVersion = "0.1.0";

namespace {

nlohmann::json headJson(const HeadStats& h) {
    return {{"bin_mass", h.binMass}, {"entropy", h.entropy}, {"mean_distance", h.meanDistance},
            {"beyond_mass", h.beyondMass}, {"sink_mass", h.sinkMass}};
}

nlohmann::json layerCostJson(const LayerCost& c) {
    return {{"pairs", c.pairs}, {"flops", c.flops}, {"bytes", c.bytes}, {"kv_cache_bytes", c.kvCacheBytes},
            {"share_of_full", c.shareOfFull}};
}

nlohmann::json settingsJson(const ModelConfig& config, const RunSettings& s) {
    return {{"command", s.command},     {"model_dir", s.modelDir},       {"model_config", config.toJson()},
            {"document", s.documentPath}, {"document_fnv1a64", s.documentHash},
            {"document_bytes", s.documentBytes}, {"device", s.device}};
}

// JSON has no NaN; a missing value is null.
nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace

std::string fnv1a64Hex(const std::string& bytes) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : bytes) {
        h ^= c;
        h *= 1099511628211ull;
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

nlohmann::json costToJson(const LayerPattern& pattern, const CostSummary& cost) {
    nlohmann::json layers = nlohmann::json::array();
    for (size_t l = 0; l < cost.layers.size(); ++l) {
        auto j = layerCostJson(cost.layers[l]);
        j["spec"] = pattern.layers[l].text();
        layers.push_back(j);
    }
    return {{"pattern", pattern.text()}, {"pairs", cost.pairs}, {"full_pairs_per_layer", cost.fullPairsPerLayer},
            {"flops", cost.flops}, {"bytes", cost.bytes}, {"kv_cache_bytes", cost.kvCacheBytes},
            {"full_flops", cost.fullFlops}, {"full_kv_cache_bytes", cost.fullKvCacheBytes},
            {"relative_cost", cost.relativeCost}, {"layers", layers}};
}

nlohmann::json analysisToJson(const AnalysisResult& r, const ModelConfig& config, const RunSettings& s) {
    nlohmann::json layers = nlohmann::json::array();
    for (size_t l = 0; l < r.layers.size(); ++l) {
        const LayerAnalysis& la = r.layers[l];
        nlohmann::json j = {{"index", l}, {"spec", la.spec.text()}, {"kind", attentionKindName(la.spec.kind)},
                            {"span", la.spec.span}, {"seconds", la.seconds}, {"cost", layerCostJson(la.cost)}};
        if (!la.heads.empty()) {
            j["head_mean"] = headJson(la.headMean);
            nlohmann::json heads = nlohmann::json::array();
            for (const auto& h : la.heads) heads.push_back(headJson(h));
            j["heads"] = heads;
            j["beyond_per_token"] = la.beyondPerToken;
            j["entropy_per_token"] = la.entropyPerToken;
            if (!r.queryRows.empty()) j["rows"] = la.rows;
            if (s.includeMaps) {
                j["pool_rows"] = la.poolRows;
                j["pool_cols"] = la.poolCols;
                j["pooled"] = la.pooled;
            }
        }
        if (const SelectionSummary sum = summarizeSelections(la); sum.present) {
            const SparseKSelectionStats& sel = la.selections;
            nlohmann::json rows = nlohmann::json::array();
            const size_t H = sel.heads();
            for (size_t q = 0; q * H < sel.rowKeys.size(); ++q) {
                nlohmann::json heads = nlohmann::json::array();
                for (size_t h = 0; h < H; ++h)
                    heads.push_back({{"keys", sel.rowKeys[q * H + h]}, {"mask", sel.rowMask[q * H + h]}});
                rows.push_back(heads);
            }
            nlohmann::json js = {{"top_k", la.spec.topK}, {"window", la.spec.span},
                                 {"selected_per_query", sum.selectedPerQuery}, {"mask_per_query", sum.maskPerQuery},
                                 {"fractional_share", sum.fractionalShare}, {"count_bins", sum.countBins},
                                 {"heads_count_bins", sel.countBins}, {"heads_mask_bins", sel.maskBins},
                                 {"selected_pairs", sel.selectedPairs}, {"key_picks", sel.keyPicks},
                                 {"most_picked", sum.mostPicked}, {"rows", rows}};
            if (s.includeMaps) {
                js["pool_rows"] = sel.poolRows;
                js["pool_cols"] = sel.poolCols;
                js["pooled"] = sel.pooled;
            }
            j["selections"] = js;
        }
        layers.push_back(j);
    }
    return {{"schema_version", kJsonSchemaVersion},
            {"spanscope_version", kSpanscopeVersion},
            {"kind", "analysis"},
            {"settings", settingsJson(config, s)},
            {"pattern", r.pattern.text()},
            {"pattern_layers", r.pattern.toJson()},
            {"beyond_span", r.beyondSpan},
            {"sink_tokens", r.sinkTokens},
            {"distance_bins", "bin 0: distance 0; bin k: distance in [2^(k-1), 2^k)"},
            {"query_rows", r.queryRows},
            {"map_region", {{"queries", {r.mapQ0, r.mapQ1}}, {"keys", {r.mapK0, r.mapK1}}}},
            {"tokens", r.numTokens},
            {"mean_loss", number(r.meanLoss)},
            {"perplexity", number(r.perplexity)},
            {"token_loss", r.tokenLoss},
            {"seconds", r.seconds},
            {"cost", costToJson(r.pattern, r.cost)},
            {"layers", layers}};
}

nlohmann::json sweepToJson(const std::vector<SweepPoint>& points, const LayerSpec& sparse, const ModelConfig& config,
                           const RunSettings& s, int64_t numTokens) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : points)
        list.push_back({{"boundary", p.boundary}, {"relative_cost", p.relativeCost}, {"mean_loss", number(p.meanLoss)},
                        {"perplexity", number(p.perplexity)},
                        {"mean_loss_beyond_2048", number(meanLossFrom(p.tokenLoss, 2048))}});
    return {{"schema_version", kJsonSchemaVersion}, {"spanscope_version", kSpanscopeVersion}, {"kind", "sweep"},
            {"settings", settingsJson(config, s)},  {"sparse", sparse.text()}, {"tokens", numTokens},
            {"points", list}};
}

}  // namespace spanscope
