// Views: one ImGui panel per file (view_<panel>.cpp), all listed in registry.cpp.
//
// A view draws from the latest immutable engine Snapshot and the UI state; it never includes
// LibTorch, never blocks, and never calls CUDA. It changes what the user wants by editing UiState
// (the app turns that into engine requests once per frame) or by calling Actions.
// All view code runs on the UI thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/format.h"
#include "engine/pattern.h"
#include "engine/runner.h"

namespace spanscope {

enum class DocumentTint { Loss, DeltaLoss, Attention, BeyondSpan, Selections };

// What the user has chosen. Plain data: saved between runs (settings.cpp), edited by views.
struct UiState {
    // Pattern: MASFormer boundary l plus the sparse kind above it.
    int boundary = 4;
    AttentionKind sparseKind = AttentionKind::Window;
    int64_t sparseSpan = 512;
    int64_t sparseTopK = 64;   // SparseK's k: keys each query selects beyond its window of sparseSpan
    bool prevBlock = false;
    // Selection.
    int layer = 0;
    int head = -1;             // -1: mean over heads
    int64_t queryToken = -1;   // -1: none
    int64_t hoverToken = -1;
    DocumentTint tint = DocumentTint::Loss;
    // Tokens the Document view showed last frame, [first, last]; -1 when it is not drawn.
    int64_t documentFirstVisible = -1, documentLastVisible = -1;
    // Attention map: log colour and the visible region as fractions of the document [0, 1].
    bool mapLog = true;
    bool mapOverlay = true;
    float mapX0 = 0, mapX1 = 1, mapY0 = 0, mapY1 = 1;
    // Distances.
    bool distanceCumulative = false;
    // Compare: the second pattern, as text.
    std::string comparePattern = "full";
    // Files.
    std::string modelDir, docPath, device = "cpu";
    std::vector<std::string> recentDocs, recentModels;

    LayerSpec sparseSpec() const;
    // The pattern the UI asks for, for a model of numLayers layers.
    LayerPattern pattern(int numLayers) const;
};

struct Actions {
    std::function<void(const std::string&)> openModel;
    std::function<void(const std::string&)> openDocument;
    std::function<void()> runSweep;
    std::function<void(const std::string& pattern)> runCompare;
};

struct ViewContext {
    const Snapshot& snap;
    UiState& ui;
    const Actions& actions;
    // The compare analysis (second pattern), when one has been computed.
    std::shared_ptr<const AnalysisResult> compare;
};

class View {
public:
    virtual ~View() = default;
    virtual const char* name() const = 0;
    // Default placement as fractions of the window: x, y, w, h.
    virtual void defaultRect(float& x, float& y, float& w, float& h) const = 0;
    virtual void drawContent(ViewContext& ctx) = 0;
    // Begin/End around drawContent, with the empty state when nothing is loaded yet.
    void draw(ViewContext& ctx, float displayW, float displayH);
    bool open = true;

protected:
    // True when the snapshot has an analysis to draw; draws the empty state otherwise.
    static bool requireAnalysis(const ViewContext& ctx);
};

std::vector<std::unique_ptr<View>> makeViews();

// Shared drawing helpers (view_common.cpp).
std::string tokenLabel(const DocumentInfo& doc, int64_t token);  // printable text of one token

}  // namespace spanscope
