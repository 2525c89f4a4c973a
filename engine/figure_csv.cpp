// The numbers behind each figure as CSV; see figures.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>

#include "engine/figures.h"
#include "engine/utf8.h"

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

// A token's bytes as one line of printable text: backslash, tab, CR, LF as \\, \t, \r, \n; other
// control bytes and bytes that are not (whole) UTF-8 as \xNN.
std::string escapedToken(const std::string& bytes) {
    std::string o;
    char buf[8];
    for (size_t i = 0; i < bytes.size();) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        if (c == '\\') o += "\\\\";
        else if (c == '\n') o += "\\n";
        else if (c == '\t') o += "\\t";
        else if (c == '\r') o += "\\r";
        else if (c >= 0x20 && c < 0x7f) o += static_cast<char>(c);
        else if (auto ch = c >= 0x80 ? decodeUtf8At(bytes, i) : std::nullopt) {
            o.append(bytes, i, ch->length);
            i += ch->length;
            continue;
        } else {
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            o += buf;
        }
        ++i;
    }
    return o;
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

std::string figureCsv(const DocumentTextFigure& f) {
    // Loss of token t: of predicting it from the tokens before (none for the first token).
    std::string s = "position,token_id,text,loss,loss_all_full,loss_minus_all_full,attention,beyond_span_mass,sparsek_selection\n";
    for (size_t i = 0; i < f.ids.size(); ++i) {
        const float delta = f.loss[i] - f.fullLoss[i];
        s += num(f.first + static_cast<int64_t>(i)) + "," + std::to_string(f.ids[i]) + "," + text(escapedToken(f.text[i])) +
             "," + num(f.loss[i]) + "," + num(f.fullLoss[i]) + "," + num(delta) + "," + num(f.attention[i]) + "," +
             num(f.beyond[i]) + "," + num(i < f.selection.size() ? f.selection[i] : std::numeric_limits<float>::quiet_NaN()) + "\n";
    }
    return s;
}

std::string figureCsv(const LayerStackFigure& f) {
    std::string s = "layer,spec,kind,span,full_below_boundary,pairs,share_of_full,beyond_mass,mean_distance,entropy,sink_mass\n";
    for (size_t l = 0; l < f.layers.size(); ++l) {
        const LayerRow& r = f.layers[l];
        s += std::to_string(l) + "," + text(r.spec.text()) + "," + attentionKindName(r.spec.kind) + "," + num(r.spec.span) +
             "," + (static_cast<int>(l) < f.boundary ? "1" : "0") + "," + num(r.pairs) + "," + num(r.shareOfFull) + "," +
             num(r.beyondMass) + "," + num(r.meanDistance) + "," + num(r.entropy) + "," + num(r.sinkMass) + "\n";
    }
    return s;
}

std::string figureCsv(const CompareLayersFigure& f) {
    // Long form: one quantity per row, the two patterns and their difference side by side;
    // layer "all" for the totals.
    std::string s = "layer,quantity,current,compare,compare_minus_current\n";
    auto row = [&](const std::string& layer, const std::string& quantity, double a, double b) {
        s += layer + "," + quantity + "," + num(a) + "," + num(b) + "," + num(b - a) + "\n";
    };
    row("all", "mean_loss", f.current.meanLoss, f.compare.meanLoss);
    row("all", "perplexity", f.current.perplexity, f.compare.perplexity);
    row("all", "relative_cost", f.current.relativeCost, f.compare.relativeCost);
    row("all", "loss_after_" + std::to_string(f.context), f.current.lossAfterContext, f.compare.lossAfterContext);
    row("all", "beyond_span", static_cast<double>(f.current.beyondSpan), static_cast<double>(f.compare.beyondSpan));
    for (size_t l = 0; l < f.currentLayers.size() && l < f.compareLayers.size(); ++l) {
        const LayerRow &a = f.currentLayers[l], &b = f.compareLayers[l];
        const std::string layer = std::to_string(l);
        s += layer + ",spec," + text(a.spec.text()) + "," + text(b.spec.text()) + ",\n";
        row(layer, "pairs", static_cast<double>(a.pairs), static_cast<double>(b.pairs));
        row(layer, "share_of_full", a.shareOfFull, b.shareOfFull);
        row(layer, "beyond_mass", a.beyondMass, b.beyondMass);
        row(layer, "mean_distance", a.meanDistance, b.meanDistance);
        row(layer, "entropy", a.entropy, b.entropy);
        row(layer, "sink_mass", a.sinkMass, b.sinkMass);
    }
    return s;
}

std::string figureCsv(const CompareLossFigure& f) {
    const size_t n = std::min(f.currentLoss.size(), f.compareLoss.size());
    std::vector<float> diff(n);
    for (size_t i = 0; i < n; ++i) diff[i] = f.compareLoss[i] - f.currentLoss[i];
    const std::vector<double> mean = runningMean(diff, compareSmoothingWindow(f));
    std::string s = "position,loss_current,loss_compare,compare_minus_current,running_mean_difference\n";
    for (size_t i = 0; i < n; ++i)
        s += std::to_string(i) + "," + num(f.currentLoss[i]) + "," + num(f.compareLoss[i]) + "," + num(diff[i]) + "," +
             num(mean[i]) + "\n";
    return s;
}

}  // namespace spanscope
