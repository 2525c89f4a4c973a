// Per-token lookups into an AnalysisResult shared by the Document view and its print figure:
// the loss of token t, the exact attention row of a query, and the tint scales. Header-only, no
// LibTorch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "engine/analysis.h"

namespace spanscope {

// The Document view's tint scales (the view and its print figure use the same): the loss colour
// ends at the 99th percentile, the attention colour spans this many decades below the strongest key.
constexpr float kAttentionTintDecades = 4.0f;

// q-quantile of the finite values (0 when there are none).
inline float percentile(std::vector<float> v, double q) {
    v.erase(std::remove_if(v.begin(), v.end(), [](float x) { return !std::isfinite(x); }), v.end());
    if (v.empty()) return 0.0f;
    const size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size() - 1)));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

// Loss of predicting token t (tokenLoss[t-1]); NaN for token 0 and outside the document.
inline float lossOfToken(const std::vector<float>& tokenLoss, int64_t t) {
    return t >= 1 && t - 1 < static_cast<int64_t>(tokenLoss.size()) ? tokenLoss[static_cast<size_t>(t - 1)]
                                                                      : std::numeric_limits<float>::quiet_NaN();
}

// The exact attention row of one query in one layer: (H, T) row-major.
struct AttentionRow {
    const float* data = nullptr;
    int64_t heads = 0;
    int64_t tokens = 0;

    // The weight the query puts on `key` for `head` (or the head mean when head is out of range);
    // NaN without a row or outside the document.
    float weight(int head, int64_t key) const {
        if (!data || key < 0 || key >= tokens) return std::numeric_limits<float>::quiet_NaN();
        if (head >= 0 && head < heads) return data[head * tokens + key];
        float sum = 0;
        for (int64_t h = 0; h < heads; ++h) sum += data[h * tokens + key];
        return sum / static_cast<float>(heads);
    }
};

// The row of `query` in `layer`, or an empty row when the analysis computed none.
inline AttentionRow findAttentionRow(const AnalysisResult& a, int64_t query, int layer) {
    const auto it = std::find(a.queryRows.begin(), a.queryRows.end(), query);
    if (query < 0 || it == a.queryRows.end() || layer < 0 || layer >= static_cast<int>(a.layers.size())) return {};
    const auto& rows = a.layers[static_cast<size_t>(layer)].rows;
    const int64_t R = static_cast<int64_t>(a.queryRows.size()), T = a.numTokens;
    if (T <= 0) return {};
    const int64_t H = static_cast<int64_t>(rows.size()) / (R * T);
    if (H <= 0 || static_cast<int64_t>(rows.size()) != R * H * T) return {};
    return {rows.data() + (it - a.queryRows.begin()) * H * T, H, T};
}

// The "SparseK selections" tint of the Document view and its print figure, over all T tokens of
// the analysis. With a query whose row the analysis holds: the mask m of each key it selected in
// `layer` beyond its window (head mean, or one head), NaN elsewhere. Otherwise: how many queries
// selected each token (head mean). Empty values and a caption saying why for a layer that is not
// SparseK.
struct SelectionTint {
    std::vector<float> values;  // (T) or empty
    float hi = 1.0f;            // colour scale 0..hi
    std::string caption;
};

inline SelectionTint selectionTint(const AnalysisResult& a, int layer, int head, int64_t query) {
    SelectionTint t;
    char buf[200];
    if (layer < 0 || layer >= static_cast<int>(a.layers.size())) return t;
    const LayerAnalysis& la = a.layers[static_cast<size_t>(layer)];
    const SparseKSelectionStats& sel = la.selections;
    if (sel.countBins.empty()) {
        std::snprintf(buf, sizeof buf, "layer %d is %s, not SparseK: no selections", layer, la.spec.text().c_str());
        t.caption = buf;
        return t;
    }
    const auto H = static_cast<int64_t>(sel.heads());
    const size_t T = static_cast<size_t>(a.numTokens);
    const auto row = std::find(a.queryRows.begin(), a.queryRows.end(), query);
    if (query >= 0 && row != a.queryRows.end() && sel.rowKeys.size() == a.queryRows.size() * static_cast<size_t>(H)) {
        t.values.assign(T, std::numeric_limits<float>::quiet_NaN());
        const size_t r = static_cast<size_t>(row - a.queryRows.begin());
        size_t count = 0;
        for (int64_t h = 0; h < H; ++h) {
            if (head >= 0 && head != h) continue;
            const auto& keys = sel.rowKeys[r * static_cast<size_t>(H) + static_cast<size_t>(h)];
            const auto& mask = sel.rowMask[r * static_cast<size_t>(H) + static_cast<size_t>(h)];
            count += keys.size();
            for (size_t n = 0; n < keys.size() && static_cast<size_t>(keys[n]) < T; ++n) {
                float& cell = t.values[static_cast<size_t>(keys[n])];
                cell = (std::isnan(cell) ? 0.0f : cell) + mask[n] / static_cast<float>(head >= 0 ? 1 : H);
            }
        }
        const std::string who = head >= 0 ? "head " + std::to_string(head) : "all heads";
        std::snprintf(buf, sizeof buf, "keys token %lld selected in layer %d (%s, %s): %zu, tint = mask m",
                      static_cast<long long>(query), layer, la.spec.text().c_str(), who.c_str(), count);
    } else {
        t.values = sel.keyPicks;  // how many queries selected each token (head mean)
        t.hi = std::max(percentile(t.values, 0.99), 1.0f);
        std::snprintf(buf, sizeof buf, "queries that selected each token, layer %d (%.1f keys per query; "
                      "choose a token for its own selections)", layer, summarizeSelections(la, 0).selectedPerQuery);
    }
    t.caption = buf;
    return t;
}

}  // namespace spanscope
