// Per-token lookups into an AnalysisResult shared by the Document view and its print figure:
// the loss of token t, the exact attention row of a query, and the tint scales. Header-only, no
// LibTorch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
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

}  // namespace spanscope
