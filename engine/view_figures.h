// The figures of the app's Document, Layers and Compare views, built from an analysis (plain host
// data, no LibTorch, no ImGui), so that the app's export and `spanscope-cli report` draw the same.
//
// The Document figure reproduces the view's tints: loss (0 to the 99th percentile over the whole
// document), loss minus all-full (diverging, ± the 99th percentile of its magnitude), the
// attention the query token pays in one layer (log10, 4 decades below its strongest key), and
// the mass each query sends beyond the span. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/analysis.h"
#include "engine/figures.h"

namespace spanscope {

// What the Document, Layers and Compare views show: chosen in the app, or on the command line.
struct ViewSelection {
    TokenTint tint = TokenTint::Loss;
    int layer = 0;          // the selected layer: of the attention and beyond-span tints; shaded in the stack
    int head = -1;          // statistics and attention of this head; -1: the head mean
    int64_t query = -1;     // the query token; -1: none
    int64_t textFirst = -1;  // the document window [textFirst, textFirst + textCount); see resolveTextWindow
    int64_t textCount = 0;
};

constexpr int64_t kDefaultTextTokens = 400;  // a page of text
constexpr int64_t kMaxTextTokens = 4000;

// Fills in the document window of a T-token document: count <= 0 gives kDefaultTextTokens,
// first < 0 centres the window on the query token (or starts at token 0); then clamps both to
// the document.
void resolveTextWindow(ViewSelection& s, int64_t numTokens);

// The tinted text of the window s.textFirst.. (resolved). `fullLoss`: (T-1) all-full per-token
// loss, or null/empty (then the delta tint has no values, unless the pattern is all full).
// `text`, `offsets` (T byte ranges) and `ids` (T) are the document and its tokens.
DocumentTextFigure documentTextFigure(const AnalysisResult& a, const std::vector<float>* fullLoss,
                                      const std::string& text, const std::vector<std::pair<uint32_t, uint32_t>>& offsets,
                                      const std::vector<int32_t>& ids, const ViewSelection& s);

LayerStackFigure layerStackFigure(const AnalysisResult& a, const ViewSelection& s);

// The two analyses must be of the same document and model (same T and L): InputError otherwise.
// `context`: the model's training context (ModelConfig::maxPositions).
CompareLayersFigure compareLayersFigure(const AnalysisResult& current, const AnalysisResult& compare, int head,
                                        int64_t context);
CompareLossFigure compareLossFigure(const AnalysisResult& current, const AnalysisResult& compare, int64_t context);

}  // namespace spanscope
