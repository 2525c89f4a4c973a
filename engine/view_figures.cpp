// Figures of the Document, Layers and Compare views from an analysis; see view_figures.h.
#include "engine/view_figures.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "engine/analysis_rows.h"
#include "engine/errors.h"
#include "engine/utf8.h"

namespace spanscope {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int kTabSpaces = 4;

// What the Document view draws for tokens [first, end): printable text, '\n' for line breaks,
// control bytes and broken UTF-8 as \xNN, a character split across tokens whole in the token
// where it begins.
std::vector<std::string> displayTexts(const std::string& text, const std::vector<std::pair<uint32_t, uint32_t>>& offsets,
                                      int64_t first, int64_t end) {
    std::vector<std::string> out;
    size_t shownUntil = 0;
    if (first < end && first > 0) {  // a character begun before the window was shown there
        size_t start = offsets[static_cast<size_t>(first)].first;
        for (int back = 0; back < 3 && start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80; ++back)
            --start;
        if (auto ch = decodeUtf8At(text, start)) shownUntil = start + ch->length;
    }
    char buf[8];
    for (int64_t t = first; t < end; ++t) {
        const size_t begin = offsets[static_cast<size_t>(t)].first;
        const size_t stop = std::min<size_t>(offsets[static_cast<size_t>(t)].second, text.size());
        std::string d;
        for (size_t i = std::max(begin, shownUntil); i < stop;) {
            const auto c = static_cast<unsigned char>(text[i]);
            if (c == '\n') d += '\n';
            else if (c == '\t') d.append(kTabSpaces, ' ');
            else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
                // CRLF: the '\n' breaks the line
            } else if (c >= 0x20 && c < 0x7f) d += static_cast<char>(c);
            else if (auto ch = c >= 0x80 ? decodeUtf8At(text, i) : std::nullopt) {
                d.append(text, i, ch->length);
                i += ch->length;
                shownUntil = i;
                continue;
            } else {
                std::snprintf(buf, sizeof buf, "\\x%02X", c);
                d += buf;
            }
            ++i;
        }
        out.push_back(std::move(d));
    }
    return out;
}

LayerRow layerRow(const LayerAnalysis& la, int head) {
    LayerRow r;
    r.spec = la.spec;
    r.pairs = la.cost.pairs;
    r.shareOfFull = la.cost.shareOfFull;
    if (la.heads.empty()) {
        r.beyondMass = r.meanDistance = r.entropy = r.sinkMass = std::nan("");
        return r;
    }
    const HeadStats& h = head >= 0 && head < static_cast<int>(la.heads.size()) ? la.heads[static_cast<size_t>(head)]
                                                                              : la.headMean;
    r.beyondMass = h.beyondMass;
    r.meanDistance = h.meanDistance;
    r.entropy = h.entropy;
    r.sinkMass = h.sinkMass;
    return r;
}

void checkSameDocument(const AnalysisResult& a, const AnalysisResult& b) {
    if (a.numTokens != b.numTokens || a.layers.size() != b.layers.size())
        throw InputError("compare: the two analyses are not of the same document and model");
}

}  // namespace

void resolveTextWindow(ViewSelection& s, int64_t numTokens) {
    int64_t count = s.textCount > 0 ? std::min(s.textCount, kMaxTextTokens) : kDefaultTextTokens;
    count = std::min(count, std::max<int64_t>(numTokens, 0));
    int64_t first = s.textFirst;
    if (first < 0) first = s.query >= 0 ? s.query - count / 2 : 0;
    first = std::clamp<int64_t>(first, 0, std::max<int64_t>(numTokens - count, 0));
    s.textFirst = first;
    s.textCount = count;
}

DocumentTextFigure documentTextFigure(const AnalysisResult& a, const std::vector<float>* fullLoss,
                                      const std::string& text, const std::vector<std::pair<uint32_t, uint32_t>>& offsets,
                                      const std::vector<int32_t>& ids, const ViewSelection& sel) {
    const int64_t T = a.numTokens;
    if (static_cast<int64_t>(offsets.size()) != T || static_cast<int64_t>(ids.size()) != T)
        throw InputError("document figure: the tokens are not those of the analysis");
    ViewSelection s = sel;
    resolveTextWindow(s, T);
    DocumentTextFigure f;
    f.tint = s.tint;
    f.layer = std::clamp(s.layer, 0, std::max(0, static_cast<int>(a.layers.size()) - 1));
    f.head = s.head;
    f.query = s.query < T ? s.query : -1;
    f.beyondSpan = a.beyondSpan;
    f.first = s.textFirst;
    f.totalTokens = T;
    const int64_t end = s.textFirst + s.textCount;
    f.display = displayTexts(text, offsets, f.first, end);

    // The all-full loss: given, or the pattern's own when the pattern is all full.
    const std::vector<float>* full = fullLoss && fullLoss->size() == a.tokenLoss.size() ? fullLoss : nullptr;
    if (!full && a.pattern.boundary() == static_cast<int>(a.layers.size())) full = &a.tokenLoss;
    const AttentionRow row = findAttentionRow(a, f.query, f.layer);
    const std::vector<float>* beyond =
        a.layers.empty() || static_cast<int64_t>(a.layers[static_cast<size_t>(f.layer)].beyondPerToken.size()) != T
            ? nullptr
            : &a.layers[static_cast<size_t>(f.layer)].beyondPerToken;
    const SelectionTint selections = selectionTint(a, f.layer, f.head, f.query);
    for (int64_t t = f.first; t < end; ++t) {
        const auto& [b, e] = offsets[static_cast<size_t>(t)];
        f.ids.push_back(ids[static_cast<size_t>(t)]);
        f.text.push_back(text.substr(b, std::min<size_t>(e, text.size()) - std::min<size_t>(b, text.size())));
        f.loss.push_back(lossOfToken(a.tokenLoss, t));
        f.fullLoss.push_back(full ? lossOfToken(*full, t) : kNaN);
        f.attention.push_back(t <= f.query ? row.weight(f.head, t) : kNaN);
        f.beyond.push_back(beyond ? (*beyond)[static_cast<size_t>(t)] : kNaN);
        f.selection.push_back(static_cast<size_t>(t) < selections.values.size() ? selections.values[static_cast<size_t>(t)] : kNaN);
    }

    char buf[160];
    const size_t n = f.ids.size();
    switch (s.tint) {
        case TokenTint::Loss:
            f.values = f.loss;
            f.hi = std::max(percentile(a.tokenLoss, 0.99), 1e-3f);
            f.caption = "loss (nats)";
            break;
        case TokenTint::DeltaLoss: {
            if (!full) {
                f.caption = "no all-full baseline";
                break;
            }
            std::vector<float> magnitude(a.tokenLoss.size());
            for (size_t i = 0; i < magnitude.size(); ++i) magnitude[i] = std::fabs(a.tokenLoss[i] - (*full)[i]);
            f.values.resize(n);
            for (size_t i = 0; i < n; ++i) f.values[i] = f.loss[i] - f.fullLoss[i];
            f.hi = std::max(percentile(std::move(magnitude), 0.99), 1e-3f);
            f.lo = -f.hi;
            f.diverging = true;
            f.caption = "loss minus all-full (nats)";
            break;
        }
        case TokenTint::Attention: {
            if (f.query < 0) {
                f.caption = "no query token chosen";
                break;
            }
            if (!row.data) {
                std::snprintf(buf, sizeof buf, "attention of token %lld is not in this analysis",
                              static_cast<long long>(f.query));
                f.caption = buf;
                break;
            }
            float strongest = 0;
            for (int64_t k = 0; k <= f.query; ++k) strongest = std::max(strongest, row.weight(f.head, k));
            f.values.assign(n, kNaN);
            for (size_t i = 0; i < n; ++i)
                if (f.attention[i] > 0) f.values[i] = std::log10(f.attention[i]);
            f.hi = strongest > 0 ? std::log10(strongest) : 0.0f;
            f.lo = f.hi - kAttentionTintDecades;
            f.logScale = true;
            const std::string head = f.head >= 0 ? "head " + std::to_string(f.head) : "head mean";
            std::snprintf(buf, sizeof buf, "attention of token %lld, layer %d, %s (log10)",
                          static_cast<long long>(f.query), f.layer, head.c_str());
            f.caption = buf;
            break;
        }
        case TokenTint::BeyondSpan: {
            if (!beyond) {
                f.caption = "no attention statistics in this analysis";
                break;
            }
            f.values = f.beyond;
            const bool none = std::all_of(beyond->begin(), beyond->end(), [](float v) { return v <= 0.0f; });
            // The view's scale, except with no mass at all: 0..1 then (the same colours, readable ticks).
            f.hi = none ? 1.0f : std::max(percentile(*beyond, 0.99), 1e-6f);
            std::snprintf(buf, sizeof buf, "mass at distance ≥ %lld, layer %d%s", static_cast<long long>(a.beyondSpan),
                          f.layer, none ? " (none in this layer)" : "");
            f.caption = buf;
            break;
        }
        case TokenTint::Selections:
            if (!selections.values.empty()) f.values = f.selection;
            f.hi = selections.hi;
            f.caption = selections.caption.empty() ? "no SparseK selections in this analysis" : selections.caption;
            break;
    }
    return f;
}

LayerStackFigure layerStackFigure(const AnalysisResult& a, const ViewSelection& s) {
    LayerStackFigure f;
    for (const auto& la : a.layers) f.layers.push_back(layerRow(la, s.head));
    f.boundary = a.pattern.boundary();
    f.selectedLayer = s.layer >= 0 && s.layer < static_cast<int>(a.layers.size()) ? s.layer : -1;
    f.head = s.head;
    f.beyondSpan = a.beyondSpan;
    f.tokens = a.numTokens;
    f.relativeCost = a.cost.relativeCost;
    return f;
}

CompareLayersFigure compareLayersFigure(const AnalysisResult& current, const AnalysisResult& compare, int head,
                                        int64_t context) {
    checkSameDocument(current, compare);
    CompareLayersFigure f;
    f.currentPattern = current.pattern.text();
    f.comparePattern = compare.pattern.text();
    f.context = context;
    f.head = head;
    auto totals = [context](const AnalysisResult& r) {
        return CompareLayersFigure::Totals{r.meanLoss, r.perplexity, r.cost.relativeCost,
                                           meanLossFrom(r.tokenLoss, context), r.beyondSpan};
    };
    f.current = totals(current);
    f.compare = totals(compare);
    for (const auto& la : current.layers) f.currentLayers.push_back(layerRow(la, head));
    for (const auto& la : compare.layers) f.compareLayers.push_back(layerRow(la, head));
    return f;
}

CompareLossFigure compareLossFigure(const AnalysisResult& current, const AnalysisResult& compare, int64_t context) {
    checkSameDocument(current, compare);
    CompareLossFigure f;
    f.currentPattern = current.pattern.text();
    f.comparePattern = compare.pattern.text();
    f.currentLoss = current.tokenLoss;
    f.compareLoss = compare.tokenLoss;
    f.context = context;
    return f;
}

}  // namespace spanscope
