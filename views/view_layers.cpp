// Layer stack: one row per layer (top layer first), the draggable full/sparse boundary, the
// sparse kind and span, presets from the MASFormer paper, and the layer/head selection.
#include <imgui.h>

#include <algorithm>
#include <cstdio>

#include "engine/cost_model.h"
#include "views/colormap.h"
#include "views/views_list.h"

namespace spanscope {
namespace {

constexpr float kRowHeight = 24.0f;

uint32_t kindColor(AttentionKind k) {
    switch (k) {
        case AttentionKind::Full: return IM_COL32(220, 120, 60, 255);
        case AttentionKind::Window: return IM_COL32(70, 160, 220, 255);
        case AttentionKind::Block: return IM_COL32(120, 200, 120, 255);
        case AttentionKind::SparseK: return IM_COL32(200, 120, 220, 255);
    }
    return IM_COL32_WHITE;
}

struct Preset {
    const char* label;
    int boundary;  // -1: all layers
    AttentionKind kind;
    int64_t span;
};

constexpr Preset kPresets[] = {
    {"Paper: l=4, block 1024", 4, AttentionKind::Block, 1024},
    {"l=2, window 512", 2, AttentionKind::Window, 512},
    {"l=4, window 1024", 4, AttentionKind::Window, 1024},
    {"All full", -1, AttentionKind::Window, 512},
    {"All sparse (window 512)", 0, AttentionKind::Window, 512},
};

class LayersView : public View {
public:
    const char* name() const override { return "Layers"; }
    void defaultRect(float& x, float& y, float& w, float& h) const override { x = 0; y = 0.03f; w = 0.25f; h = 0.50f; }

    void drawContent(ViewContext& ctx) override {
        UiState& ui = ctx.ui;
        const int L = static_cast<int>(ctx.snap.model->config.numLayers);
        const int H = static_cast<int>(ctx.snap.model->config.numHeads);
        drawControls(ui, L, H);
        LayerPattern want = ui.pattern(L);
        const AnalysisResult* a = ctx.snap.analysis.get();
        const bool current = a && a->pattern == want;
        CostSummary cost = patternCost(want, {static_cast<int64_t>(ctx.snap.document->tokens.size()),
                                              ctx.snap.model->config.numHeads, ctx.snap.model->config.headDim(), 2, 128});
        ImGui::Text("C = %.1f%% of all-full attention", 100.0 * cost.relativeCost);
        if (!current) {
            ImGui::SameLine();
            ImGui::TextDisabled(ctx.snap.busy ? "(updating...)" : "(stale)");
        }
        ImGui::TextDisabled("layer  kind      span   pairs    beyond  mean dist");
        drawStack(ui, want, cost, current ? a : nullptr, L);
    }

private:
    void drawControls(UiState& ui, int L, int H) {
        // sparsek needs a model trained with SparseK layers (their scoring network); others get one
        // clear error line from the analysis.
        const char* kinds[] = {"window", "block", "sparsek"};
        const AttentionKind kindOf[] = {AttentionKind::Window, AttentionKind::Block, AttentionKind::SparseK};
        int kind = ui.sparseKind == AttentionKind::Block ? 1 : ui.sparseKind == AttentionKind::SparseK ? 2 : 0;
        ImGui::SetNextItemWidth(90);
        if (ImGui::Combo("##kind", &kind, kinds, 3)) ui.sparseKind = kindOf[kind];
        ImGui::SameLine();
        int span = static_cast<int>(ui.sparseSpan);
        ImGui::SetNextItemWidth(140);
        if (ImGui::SliderInt("span", &span, 16, 16384, "%d", ImGuiSliderFlags_Logarithmic)) ui.sparseSpan = std::max(1, span);
        if (ui.sparseKind == AttentionKind::Block) {
            ImGui::SameLine();
            ImGui::Checkbox("+prev", &ui.prevBlock);
        }
        if (ui.sparseKind == AttentionKind::SparseK) {  // k selected keys beyond the window of `span`
            int topK = static_cast<int>(ui.sparseTopK);
            ImGui::SetNextItemWidth(110);
            if (ImGui::SliderInt("k", &topK, 1, 4096, "%d", ImGuiSliderFlags_Logarithmic)) ui.sparseTopK = std::max(1, topK);
        }
        ImGui::SetNextItemWidth(120);
        if (ImGui::SliderInt("boundary l", &ui.boundary, 0, L)) ui.boundary = std::clamp(ui.boundary, 0, L);
        ImGui::SameLine();
        ImGui::SetNextItemWidth(110);
        std::string headLabel = ui.head < 0 ? "head mean" : "head " + std::to_string(ui.head);
        if (ImGui::BeginCombo("##head", headLabel.c_str())) {
            if (ImGui::Selectable("head mean", ui.head < 0)) ui.head = -1;
            for (int h = 0; h < H; ++h)
                if (ImGui::Selectable(("head " + std::to_string(h)).c_str(), ui.head == h)) ui.head = h;
            ImGui::EndCombo();
        }
        if (ImGui::CollapsingHeader("Presets")) {
            for (const Preset& p : kPresets) {
                if (ImGui::SmallButton(p.label)) {
                    ui.boundary = p.boundary < 0 ? L : p.boundary;
                    ui.sparseKind = p.kind;
                    ui.sparseSpan = p.span;
                    ui.prevBlock = false;
                }
                ImGui::SameLine();
            }
            ImGui::NewLine();
        }
    }

    // Rows top (layer L-1) to bottom (layer 0); the boundary sits below row `boundary`.
    void drawStack(UiState& ui, const LayerPattern& p, const CostSummary& cost, const AnalysisResult* a, int L) {
        ImDrawList* dl = ImGui::GetWindowDrawList();
        const ImVec2 origin = ImGui::GetCursorScreenPos();
        const float width = std::max(ImGui::GetContentRegionAvail().x, 200.0f);
        const float height = kRowHeight * static_cast<float>(L);
        ImGui::InvisibleButton("##stack", ImVec2(width, height));
        const bool hovered = ImGui::IsItemHovered();
        auto rowTop = [&](int layer) { return origin.y + kRowHeight * static_cast<float>(L - 1 - layer); };
        const float boundaryY = origin.y + kRowHeight * static_cast<float>(L - ui.boundary);

        // Drag near the boundary line moves it; a click elsewhere selects the layer.
        const ImVec2 mouse = ImGui::GetIO().MousePos;
        if (ImGui::IsItemActivated()) m_dragging = std::abs(mouse.y - boundaryY) < 8.0f;
        if (ImGui::IsItemActive() && m_dragging) {
            int l = static_cast<int>((origin.y + height - mouse.y) / kRowHeight + 0.5f);
            ui.boundary = std::clamp(l, 0, L);
        } else if (ImGui::IsItemDeactivated() && !m_dragging && hovered) {
            int layer = L - 1 - static_cast<int>((mouse.y - origin.y) / kRowHeight);
            ui.layer = std::clamp(layer, 0, L - 1);
        }
        if (!ImGui::IsItemActive()) m_dragging = false;

        char buf[160];
        for (int l = 0; l < L; ++l) {
            const LayerSpec& s = p.layers[static_cast<size_t>(l)];
            const float y = rowTop(l);
            if (l == ui.layer) dl->AddRectFilled(ImVec2(origin.x, y), ImVec2(origin.x + width, y + kRowHeight), IM_COL32(70, 70, 110, 255));
            dl->AddRectFilled(ImVec2(origin.x + 34, y + 4), ImVec2(origin.x + 40, y + kRowHeight - 4), kindColor(s.kind));
            std::string span = s.kind == AttentionKind::Full ? "-" : std::to_string(s.span);
            std::string pairs = formatCount(static_cast<double>(cost.layers[static_cast<size_t>(l)].pairs));
            if (a) {
                const HeadStats& hs = ui.head >= 0 && ui.head < static_cast<int>(a->layers[static_cast<size_t>(l)].heads.size())
                                          ? a->layers[static_cast<size_t>(l)].heads[static_cast<size_t>(ui.head)]
                                          : a->layers[static_cast<size_t>(l)].headMean;
                std::snprintf(buf, sizeof buf, "%3d    %-8s %6s %8s   %5.3f  %8.1f", l, attentionKindName(s.kind),
                              span.c_str(), pairs.c_str(), hs.beyondMass, hs.meanDistance);
                // Beyond-span mass as a bar behind the number.
                const float bx = origin.x + width - 120;
                dl->AddRectFilled(ImVec2(bx, y + 6), ImVec2(bx + 40 * static_cast<float>(hs.beyondMass), y + kRowHeight - 6),
                                  heatColor(static_cast<float>(hs.beyondMass), 140));
            } else {
                std::snprintf(buf, sizeof buf, "%3d    %-8s %6s %8s", l, attentionKindName(s.kind), span.c_str(), pairs.c_str());
            }
            dl->AddText(ImVec2(origin.x + 4, y + 4), IM_COL32(230, 230, 230, 255), buf);
            dl->AddLine(ImVec2(origin.x, y + kRowHeight), ImVec2(origin.x + width, y + kRowHeight), IM_COL32(60, 60, 60, 255));
        }
        // The boundary: thick line with a grip.
        const bool nearBoundary = hovered && std::abs(mouse.y - boundaryY) < 8.0f;
        const uint32_t col = m_dragging || nearBoundary ? IM_COL32(255, 220, 80, 255) : IM_COL32(240, 170, 40, 255);
        dl->AddLine(ImVec2(origin.x, boundaryY), ImVec2(origin.x + width, boundaryY), col, 3.0f);
        std::snprintf(buf, sizeof buf, "l = %d full below", ui.boundary);
        dl->AddText(ImVec2(origin.x + width - ImGui::CalcTextSize(buf).x - 4, boundaryY - 16), col, buf);
        if (nearBoundary || m_dragging) ImGui::SetMouseCursor(ImGuiMouseCursor_ResizeNS);
    }

    bool m_dragging = false;
};

}  // namespace

std::unique_ptr<View> makeLayersView() { return std::make_unique<LayersView>(); }

}  // namespace spanscope
