// Cost view: what the pattern costs, per layer and in total, against the all-full model: attended
// pairs, attention FLOPs, bytes moved, KV cache, measured time, and the paper's relative cost C.
// Counts follow the boundary at once (the cost model is exact and cheap); measured times come
// from the newest analysis and are greyed while they belong to an older pattern.
#include <imgui.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "engine/cost_model.h"
#include "views/view.h"
#include "views/views_list.h"

namespace spanscope {
namespace {

constexpr float kBigNumberScale = 2.2f;
constexpr ImU32 kShareBarColor = IM_COL32(70, 140, 220, 160);

std::string spanText(const LayerSpec& spec, int64_t tokens) {
    char buf[48];
    switch (spec.kind) {
        case AttentionKind::Full: std::snprintf(buf, sizeof buf, "all (%lld)", static_cast<long long>(tokens)); break;
        case AttentionKind::Window: std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(spec.span)); break;
        case AttentionKind::Block:
            std::snprintf(buf, sizeof buf, "%lld%s", static_cast<long long>(spec.span), spec.prevBlock ? " +prev" : "");
            break;
        case AttentionKind::SparseK:
            std::snprintf(buf, sizeof buf, "%lld + top %lld", static_cast<long long>(spec.span),
                          static_cast<long long>(spec.topK));
            break;
    }
    return buf;
}

void ratioCell(double value, double full) {
    if (full > 0) ImGui::Text("%.3f", value / full);
    else ImGui::TextDisabled("-");
}

class CostView final : public View {
public:
    const char* name() const override { return "Cost"; }
    void defaultRect(float& x, float& y, float& w, float& h) const override {
        x = 0.70f; y = 0.43f; w = 0.30f; h = 0.27f;
    }
    void drawContent(ViewContext& ctx) override;

private:
    void updateCost(const LayerPattern& pattern, const CostParams& params);
    void drawHeadline(const ViewContext& ctx, const LayerPattern& pattern, int64_t tokens);
    void drawTotals(const ViewContext& ctx, const AnalysisResult* measured, int64_t tokens);
    void drawLayers(ViewContext& ctx, const LayerPattern& pattern, const AnalysisResult* timed, bool timesCurrent,
                    int64_t tokens);

    // The cost of the pattern the UI asks for and of the all-full pattern, per pattern and shape.
    LayerPattern m_pattern;
    int64_t m_tokens = -1, m_heads = -1, m_headDim = -1;
    CostSummary m_cost, m_fullCost;
};

void CostView::updateCost(const LayerPattern& pattern, const CostParams& params) {
    if (pattern == m_pattern && params.tokens == m_tokens && params.heads == m_heads && params.headDim == m_headDim)
        return;
    const bool shapeChanged = params.tokens != m_tokens || params.heads != m_heads || params.headDim != m_headDim ||
                              pattern.layers.size() != m_pattern.layers.size();
    m_pattern = pattern;
    m_tokens = params.tokens;
    m_heads = params.heads;
    m_headDim = params.headDim;
    m_cost = patternCost(pattern, params);
    if (shapeChanged) m_fullCost = patternCost(masformerPattern(static_cast<int>(pattern.layers.size()),
                                                                static_cast<int>(pattern.layers.size()), LayerSpec::full()),
                                               params);
}

void CostView::drawContent(ViewContext& ctx) {
    const ModelConfig& config = ctx.snap.model->config;
    const int numLayers = static_cast<int>(config.numLayers);
    const int64_t tokens = static_cast<int64_t>(ctx.snap.document->tokens.size());
    LayerPattern pattern;
    try {
        pattern = ctx.ui.pattern(numLayers);
    } catch (const std::exception& e) {
        ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.4f, 1.0f), "Pattern: %s", e.what());
        return;
    }
    // Same parameters as the engine's analysis (bf16, 128-query tiles).
    updateCost(pattern, CostParams{tokens, config.numHeads, config.headDim(), 2, 128});

    const AnalysisResult* a = ctx.snap.analysis.get();
    if (a && (a->numTokens != tokens || a->layers.size() != pattern.layers.size())) a = nullptr;
    const bool timesCurrent = a && a->pattern == pattern;
    drawHeadline(ctx, pattern, tokens);
    drawTotals(ctx, timesCurrent ? a : nullptr, tokens);
    if (a && !timesCurrent)
        ImGui::TextDisabled("Layer times below: previous pattern (%s)", a->pattern.text().c_str());
    drawLayers(ctx, pattern, a, timesCurrent, tokens);
}

void CostView::drawHeadline(const ViewContext& ctx, const LayerPattern& pattern, int64_t tokens) {
    const double c = m_cost.relativeCost;
    char big[32];
    std::snprintf(big, sizeof big, "C = %.3f", c);
    ImFont* font = ImGui::GetFont();
    const float size = ImGui::GetFontSize() * kBigNumberScale;
    const ImVec2 extent = font->CalcTextSizeA(size, 1e9f, 0.0f, big);
    const ImVec2 p = ImGui::GetCursorScreenPos();
    ImGui::GetWindowDrawList()->AddText(font, size, p, ImGui::GetColorU32(ImGuiCol_Text), big);
    ImGui::Dummy(extent);
    if (ImGui::IsItemHovered())
        ImGui::SetTooltip("Relative attention cost: attended pairs of this pattern / pairs with every layer full");
    ImGui::SameLine();
    char overlay[64];
    std::snprintf(overlay, sizeof overlay, "%.1f%% of all-full attention", 100.0 * c);
    ImGui::ProgressBar(static_cast<float>(std::clamp(c, 0.0, 1.0)), ImVec2(-1.0f, extent.y), overlay);

    const int boundary = pattern.boundary();
    const LayerSpec sparse = pattern.sparseSpec();
    const int numLayers = static_cast<int>(pattern.layers.size());
    ImGui::TextDisabled("%s", pattern.text().c_str());
    if (sparse.kind != AttentionKind::Full && sparse.kind != AttentionKind::SparseK &&
        pattern == masformerPattern(numLayers, boundary, sparse)) {
        ImGui::SameLine();
        ImGui::TextDisabled("| paper's l/L + (1 - l/L) s/n = %.3f",
                            masformerClosedFormCost(numLayers, boundary, sparse.span, tokens));
    }
}

void CostView::drawTotals(const ViewContext& ctx, const AnalysisResult* measured, int64_t tokens) {
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_SizingStretchProp;
    if (!ImGui::BeginTable("##totals", 4, flags)) return;
    ImGui::TableSetupColumn("Total");
    ImGui::TableSetupColumn("This pattern");
    ImGui::TableSetupColumn("All-full");
    ImGui::TableSetupColumn("Ratio");
    ImGui::TableHeadersRow();
    auto row = [](const char* label, const std::string& value, const std::string& full, double v, double f) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(label);
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(value.c_str());
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(full.c_str());
        ImGui::TableNextColumn();
        ratioCell(v, f);
    };
    const double fullPairs = static_cast<double>(m_fullCost.pairs);
    row("Attended pairs", formatCount(static_cast<double>(m_cost.pairs)), formatCount(fullPairs),
        static_cast<double>(m_cost.pairs), fullPairs);
    row("Attention FLOPs", formatCount(m_cost.flops), formatCount(m_cost.fullFlops), m_cost.flops, m_cost.fullFlops);
    row("Bytes moved", formatBytes(m_cost.bytes), formatBytes(m_fullCost.bytes), m_cost.bytes, m_fullCost.bytes);
    row("KV cache", formatBytes(m_cost.kvCacheBytes), formatBytes(m_cost.fullKvCacheBytes), m_cost.kvCacheBytes,
        m_cost.fullKvCacheBytes);
    ImGui::EndTable();
    if (measured && measured->seconds > 0)
        ImGui::Text("Analysis: %.3f s on %s, %s tokens/s", measured->seconds, measured->device.c_str(),
                    formatCount(static_cast<double>(tokens) / measured->seconds).c_str());
    else
        ImGui::TextDisabled("Analysis: %s", ctx.snap.busy ? "running..." : "not yet run for this pattern");
}

void CostView::drawLayers(ViewContext& ctx, const LayerPattern& pattern, const AnalysisResult* timed,
                          bool timesCurrent, int64_t tokens) {
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                  ImGuiTableFlags_ScrollX | ImGuiTableFlags_SizingFixedFit;
    if (!ImGui::BeginTable("##layers", 9, flags, ImVec2(0, ImGui::GetContentRegionAvail().y))) return;
    ImGui::TableSetupScrollFreeze(1, 1);
    ImGui::TableSetupColumn("Layer");
    ImGui::TableSetupColumn("Kind");
    ImGui::TableSetupColumn("Span");
    ImGui::TableSetupColumn("Pairs");
    ImGui::TableSetupColumn("FLOPs");
    ImGui::TableSetupColumn("Bytes");
    ImGui::TableSetupColumn("KV cache");
    ImGui::TableSetupColumn("Share of full", ImGuiTableColumnFlags_WidthFixed, ImGui::CalcTextSize("Share of full").x);
    ImGui::TableSetupColumn("Time (ms)");
    ImGui::TableHeadersRow();
    for (size_t l = 0; l < pattern.layers.size() && l < m_cost.layers.size(); ++l) {
        const LayerSpec& spec = pattern.layers[l];
        const LayerCost& c = m_cost.layers[l];
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        char label[24];
        std::snprintf(label, sizeof label, "%zu", l);
        if (ImGui::Selectable(label, static_cast<int>(l) == ctx.ui.layer, ImGuiSelectableFlags_SpanAllColumns))
            ctx.ui.layer = static_cast<int>(l);
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(attentionKindName(spec.kind));
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(spanText(spec, tokens).c_str());
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(formatCount(static_cast<double>(c.pairs)).c_str());
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(formatCount(c.flops).c_str());
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(formatBytes(c.bytes).c_str());
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(formatBytes(c.kvCacheBytes).c_str());
        ImGui::TableNextColumn();
        const ImVec2 p = ImGui::GetCursorScreenPos();
        const float width = ImGui::GetContentRegionAvail().x;
        ImGui::GetWindowDrawList()->AddRectFilled(
            p, ImVec2(p.x + width * static_cast<float>(std::clamp(c.shareOfFull, 0.0, 1.0)), p.y + ImGui::GetTextLineHeight()),
            kShareBarColor);
        ImGui::Text("%.3f", c.shareOfFull);
        ImGui::TableNextColumn();
        if (timed && l < timed->layers.size()) {
            if (timesCurrent) ImGui::Text("%.1f", 1000.0 * timed->layers[l].seconds);
            else ImGui::TextDisabled("%.1f", 1000.0 * timed->layers[l].seconds);
            if (ImGui::IsItemHovered())
                ImGui::SetTooltip("Wall time of this layer in the analysis (%s, attention statistics included)",
                                  timed->device.c_str());
        } else {
            ImGui::TextDisabled("-");
        }
    }
    ImGui::EndTable();
}

}  // namespace

std::unique_ptr<View> makeCostView() { return std::make_unique<CostView>(); }

}  // namespace spanscope
