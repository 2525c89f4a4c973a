// The numbers behind each figure as CSV; see figures.h.
#include <cmath>
#include <cstdio>
#include <string>

#include "engine/figures.h"

namespace spanscope {
namespace {

// Shortest text that reads back to the same value: 9 digits for float, 17 for double; empty for NaN.
std::string num(double v) {
    if (!std::isfinite(v)) return "";
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}
std::string num(float v) {
    if (!std::isfinite(v)) return "";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
    return buf;
}
std::string num(int64_t v) { return std::to_string(v); }

// A text field, quoted when it holds a comma or a quote (pattern texts do: "full*2,window:256*2").
std::string text(const std::string& v) {
    if (v.find_first_of(",\"\n") == std::string::npos) return v;
    std::string q = "\"";
    for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

// Start of bin b when n tokens from lo are split into p bins (as the pooled maps bin them).
int64_t binStart(int64_t lo, int64_t n, int64_t p, int64_t b) { return lo + (b * n + p - 1) / p; }

}  // namespace

std::string figureCsv(const DistanceProfileFigure& f) {
    std::string s = "layer,spec,bin,distance_min,distance_max,mass\n";
    for (size_t l = 0; l < f.binMass.size(); ++l)
        for (size_t b = 0; b < f.binMass[l].size(); ++b) {
            const int64_t lo = b == 0 ? 0 : int64_t{1} << (b - 1);
            const int64_t hi = b == 0 ? 0 : (int64_t{1} << b) - 1;
            s += std::to_string(l) + "," + text(f.specs[l].text()) + "," + std::to_string(b) + "," + num(lo) + "," + num(hi) +
                 "," + num(f.binMass[l][b]) + "\n";
        }
    return s;
}

std::string figureCsv(const AttentionMapFigure& f) {
    // One row per query bin, one column per key bin; the first two columns give the query bin's
    // token range [query_first, query_end), the header names each key bin's range.
    std::string s = "query_first,query_end";
    for (int64_t c = 0; c < f.cols; ++c)
        s += ",keys_" + num(binStart(f.k0, f.k1 - f.k0, f.cols, c)) + "_" +
             num(binStart(f.k0, f.k1 - f.k0, f.cols, c + 1));
    s += "\n";
    for (int64_t r = 0; r < f.rows; ++r) {
        s += num(binStart(f.q0, f.q1 - f.q0, f.rows, r)) + "," + num(binStart(f.q0, f.q1 - f.q0, f.rows, r + 1));
        for (int64_t c = 0; c < f.cols; ++c) s += "," + num(f.values[static_cast<size_t>(r * f.cols + c)]);
        s += "\n";
    }
    return s;
}

std::string figureCsv(const TokenLossFigure& f) {
    const int64_t window = lossSmoothingWindow(f);
    const std::vector<double> pattern = runningMean(f.patternLoss, window), full = runningMean(f.fullLoss, window);
    std::string s = "position,loss_pattern,loss_all_full,running_mean_pattern,running_mean_all_full\n";
    for (size_t i = 0; i < f.patternLoss.size(); ++i) {
        const bool hasFull = i < f.fullLoss.size();
        s += std::to_string(i) + "," + num(f.patternLoss[i]) + "," + (hasFull ? num(f.fullLoss[i]) : "") + "," +
             num(pattern[i]) + "," + (hasFull ? num(full[i]) : "") + "\n";
    }
    return s;
}

std::string figureCsv(const SweepFigure& f) {
    std::string s = "boundary,sparse,relative_cost,mean_loss,perplexity\n";
    for (const auto& p : f.points)
        s += std::to_string(p.boundary) + "," + text(f.sparse) + "," + num(p.relativeCost) + "," + num(p.meanLoss) + "," +
             num(p.perplexity) + "\n";
    return s;
}

std::string figureCsv(const CostTableFigure& f) {
    std::string s = "layer,spec,pairs,flops,bytes,kv_cache_bytes,share_of_full\n";
    for (size_t l = 0; l < f.cost.layers.size(); ++l) {
        const LayerCost& c = f.cost.layers[l];
        s += std::to_string(l) + "," + text(f.pattern.layers[l].text()) + "," + num(c.pairs) + "," + num(c.flops) + "," +
             num(c.bytes) + "," + num(c.kvCacheBytes) + "," + num(c.shareOfFull) + "\n";
    }
    s += "total," + text(f.pattern.text()) + "," + num(f.cost.pairs) + "," + num(f.cost.flops) + "," + num(f.cost.bytes) + "," +
         num(f.cost.kvCacheBytes) + "," + num(f.cost.relativeCost) + "\n";
    return s;
}

}  // namespace spanscope
