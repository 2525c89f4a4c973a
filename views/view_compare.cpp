// Compare view: the current pattern against a second one typed by the user, on the same
// document: totals (loss, perplexity, C), per-layer statistics side by side, and the per-token
// loss difference (compare minus current) along the document.
#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "views/colormap.h"
#include "views/view.h"
#include "views/plot_util.h"
#include "views/views_list.h"

namespace spanscope {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kLeftMargin = 44.0f, kRightMargin = 10.0f, kTopMargin = 6.0f, kBottomMargin = 20.0f;
const ImVec4 kCompareText(1.0f, 0.75f, 0.35f, 1.0f);
const ImVec4 kErrorText(1.0f, 0.45f, 0.4f, 1.0f);




// "current / compare" in one table cell; the compare value in its own colour.
void pairCell(const char* format, double current, double compare) {
    char buf[32];
    std::snprintf(buf, sizeof buf, format, current);
    ImGui::TextUnformatted(buf);
    ImGui::SameLine(0, 4);
    ImGui::TextDisabled("/");
    ImGui::SameLine(0, 4);
    std::snprintf(buf, sizeof buf, format, compare);
    ImGui::TextColored(kCompareText, "%s", buf);
}

class CompareView final : public View {
public:
    const char* name() const override { return "Compare"; }
    void defaultRect(float& x, float& y, float& w, float& h) const override {
        x = 0.70f; y = 0.70f; w = 0.30f; h = 0.28f;
    }
    void drawContent(ViewContext& ctx) override;

private:
    void drawPatternField(ViewContext& ctx);
    void drawTotals(const ViewContext& ctx, const AnalysisResult& current, const AnalysisResult& compare);
    void drawLayers(ViewContext& ctx, const AnalysisResult& current, const AnalysisResult& compare, float height);
    void drawDifference(ViewContext& ctx, const ImVec2& size);
    void updateDifference(const ViewContext& ctx, int columns);

    // Validation of the typed pattern, per text and layer count.
    std::string m_checkedText;
    int m_checkedLayers = -1;
    std::string m_patternError;
    std::string m_canonical;
    // The loss difference summarised per pixel column, per pair of analyses and width.
    std::shared_ptr<const AnalysisResult> m_diffCurrent, m_diffCompare;
    int m_diffColumns = 0;
    std::vector<float> m_diffMean, m_diffLow, m_diffHigh;  // (columns)
    float m_diffRange = 1;
};

void CompareView::drawPatternField(ViewContext& ctx) {
    UiState& ui = ctx.ui;
    const ModelConfig& config = ctx.snap.model->config;
    const int numLayers = static_cast<int>(config.numLayers);
    const float buttonWidth = ImGui::CalcTextSize("Compare").x + 2 * ImGui::GetStyle().FramePadding.x;
    ImGui::SetNextItemWidth(-(buttonWidth + ImGui::GetStyle().ItemSpacing.x));
    const bool entered = ImGui::InputTextWithHint("##pattern", "full, window:512, masformer:4,block:1024, ...",
                                                  &ui.comparePattern, ImGuiInputTextFlags_EnterReturnsTrue);
    if (ui.comparePattern != m_checkedText || numLayers != m_checkedLayers) {
        m_checkedText = ui.comparePattern;
        m_checkedLayers = numLayers;
        m_patternError.clear();
        m_canonical.clear();
        try {
            m_canonical = parsePattern(ui.comparePattern, numLayers).text();
        } catch (const std::exception& e) {
            m_patternError = e.what();
        }
    }
    const bool valid = m_patternError.empty();
    ImGui::SameLine();
    ImGui::BeginDisabled(!valid || !ctx.actions.runCompare);
    if ((ImGui::Button("Compare") || (entered && valid)) && ctx.actions.runCompare) ctx.actions.runCompare(ui.comparePattern);
    ImGui::EndDisabled();
    if (!valid) ImGui::TextColored(kErrorText, "%s", m_patternError.c_str());
    else ImGui::TextDisabled("%s (%d layers)", m_canonical.c_str(), numLayers);

    if (ImGui::SmallButton("all full")) ui.comparePattern = "full";
    ImGui::SameLine();
    const std::string sparse = ui.sparseSpec().text();
    if (ImGui::SmallButton(("all " + sparse).c_str())) ui.comparePattern = sparse;
    if (!config.trainedPattern.empty()) {
        ImGui::SameLine();
        if (ImGui::SmallButton("as trained")) ui.comparePattern = config.trainedPattern;
    }
}

void CompareView::drawContent(ViewContext& ctx) {
    drawPatternField(ctx);
    if (!requireAnalysis(ctx)) return;
    const AnalysisResult& current = *ctx.snap.analysis;
    if (!ctx.compare) {
        ImGui::TextDisabled("%s", ctx.snap.busy ? "Working..." : "Press Compare to analyse the second pattern on this document.");
        return;
    }
    const AnalysisResult& compare = *ctx.compare;
    if (compare.numTokens != current.numTokens || compare.layers.size() != current.layers.size()) {
        ImGui::TextDisabled("The comparison belongs to another document or model; press Compare again.");
        return;
    }
    drawTotals(ctx, current, compare);
    // Sections keep a usable size in a small window; the window scrolls instead.
    const float rowHeight = ImGui::GetTextLineHeightWithSpacing();
    if (ImGui::CollapsingHeader("Per layer", ImGuiTreeNodeFlags_DefaultOpen)) {
        const float fit = rowHeight * (static_cast<float>(current.layers.size()) + 1.5f);
        drawLayers(ctx, current, compare, std::min(fit, std::max(0.5f * ImGui::GetContentRegionAvail().y, 6 * rowHeight)));
    }
    if (ImGui::CollapsingHeader("Loss difference along the document", ImGuiTreeNodeFlags_DefaultOpen))
        drawDifference(ctx, ImVec2(ImGui::GetContentRegionAvail().x, std::max(ImGui::GetContentRegionAvail().y, 140.0f)));
}

void CompareView::drawTotals(const ViewContext& ctx, const AnalysisResult& current, const AnalysisResult& compare) {
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_SizingStretchProp;
    if (!ImGui::BeginTable("##totals", 4, flags)) return;
    ImGui::TableSetupColumn("");
    ImGui::TableSetupColumn("Current");
    ImGui::TableSetupColumn("Compare");
    ImGui::TableSetupColumn("Difference");
    ImGui::TableHeadersRow();
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    ImGui::TextUnformatted("Pattern");
    ImGui::TableNextColumn();
    ImGui::TextUnformatted(current.pattern.text().c_str());
    ImGui::TableNextColumn();
    ImGui::TextColored(kCompareText, "%s", compare.pattern.text().c_str());
    auto row = [](const char* label, const char* format, double a, double b) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(label);
        ImGui::TableNextColumn();
        if (std::isfinite(a)) ImGui::Text(format, a);
        else ImGui::TextDisabled("-");
        ImGui::TableNextColumn();
        if (std::isfinite(b)) ImGui::TextColored(kCompareText, format, b);
        else ImGui::TextDisabled("-");
        ImGui::TableNextColumn();
        if (std::isfinite(a) && std::isfinite(b)) ImGui::Text("%+.4f", b - a);
        else ImGui::TextDisabled("-");
    };
    row("Mean loss", "%.4f", current.meanLoss, compare.meanLoss);
    row("Perplexity", "%.3f", current.perplexity, compare.perplexity);
    row("Relative cost C", "%.3f", current.cost.relativeCost, compare.cost.relativeCost);
    const int64_t context = ctx.snap.model->config.maxPositions;
    char label[48];
    std::snprintf(label, sizeof label, "Loss after %lld", static_cast<long long>(context));
    row(label, "%.4f", meanLossFrom(current.tokenLoss, context), meanLossFrom(compare.tokenLoss, context));
    ImGui::EndTable();
}

void CompareView::drawLayers(ViewContext& ctx, const AnalysisResult& current, const AnalysisResult& compare,
                             float height) {
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                  ImGuiTableFlags_ScrollX | ImGuiTableFlags_SizingFixedFit;
    if (!ImGui::BeginTable("##layers", 6, flags, ImVec2(0, height))) return;
    char beyond[64];
    if (current.beyondSpan == compare.beyondSpan)
        std::snprintf(beyond, sizeof beyond, "Mass >= %lld", static_cast<long long>(current.beyondSpan));
    else
        std::snprintf(beyond, sizeof beyond, "Mass >= %lld / %lld", static_cast<long long>(current.beyondSpan),
                      static_cast<long long>(compare.beyondSpan));
    ImGui::TableSetupScrollFreeze(1, 1);
    ImGui::TableSetupColumn("Layer");
    ImGui::TableSetupColumn("Kind (current / compare)");
    ImGui::TableSetupColumn(beyond);
    ImGui::TableSetupColumn("Mean distance");
    ImGui::TableSetupColumn("Entropy");
    ImGui::TableSetupColumn("Share of full");
    ImGui::TableHeadersRow();
    for (size_t l = 0; l < current.layers.size(); ++l) {
        const LayerAnalysis& a = current.layers[l];
        const LayerAnalysis& b = compare.layers[l];
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        char label[24];
        std::snprintf(label, sizeof label, "%zu", l);
        if (ImGui::Selectable(label, static_cast<int>(l) == ctx.ui.layer, ImGuiSelectableFlags_SpanAllColumns))
            ctx.ui.layer = static_cast<int>(l);
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(a.spec.text().c_str());
        ImGui::SameLine(0, 4);
        ImGui::TextDisabled("/");
        ImGui::SameLine(0, 4);
        ImGui::TextColored(kCompareText, "%s", b.spec.text().c_str());
        const HeadStats* sa = (l < current.layers.size() ? headStatsOf(current.layers[l], ctx.ui.head) : nullptr);
        const HeadStats* sb = (l < compare.layers.size() ? headStatsOf(compare.layers[l], ctx.ui.head) : nullptr);
        ImGui::TableNextColumn();
        if (sa && sb) pairCell("%.3f", sa->beyondMass, sb->beyondMass);
        ImGui::TableNextColumn();
        if (sa && sb) pairCell("%.1f", sa->meanDistance, sb->meanDistance);
        ImGui::TableNextColumn();
        if (sa && sb) pairCell("%.2f", sa->entropy, sb->entropy);
        ImGui::TableNextColumn();
        pairCell("%.3f", a.cost.shareOfFull, b.cost.shareOfFull);
    }
    ImGui::EndTable();
}

void CompareView::updateDifference(const ViewContext& ctx, int columns) {
    if (ctx.snap.analysis == m_diffCurrent && ctx.compare == m_diffCompare && columns == m_diffColumns) return;
    m_diffCurrent = ctx.snap.analysis;
    m_diffCompare = ctx.compare;
    m_diffColumns = columns;
    const auto& a = m_diffCurrent->tokenLoss;
    const auto& b = m_diffCompare->tokenLoss;
    const size_t n = std::min(a.size(), b.size());
    std::vector<float> diff(n);
    for (size_t i = 0; i < n; ++i) diff[i] = b[i] - a[i];
    // Element i predicts token i + 1; column c covers tokens [c·T/columns, (c+1)·T/columns).
    const int64_t tokens = static_cast<int64_t>(n) + 1;
    m_diffMean.assign(static_cast<size_t>(columns), kNaN);
    m_diffLow.assign(static_cast<size_t>(columns), kNaN);
    m_diffHigh.assign(static_cast<size_t>(columns), kNaN);
    for (int c = 0; c < columns; ++c) {
        const int64_t first = std::max<int64_t>(c * tokens / columns, 1);
        const int64_t end = std::min(std::max((c + 1) * tokens / columns, first + 1), tokens);
        if (end <= first) continue;
        double sum = 0;
        float lo = diff[static_cast<size_t>(first - 1)], hi = lo;
        for (int64_t t = first; t < end; ++t) {
            const float d = diff[static_cast<size_t>(t - 1)];
            sum += d;
            lo = std::min(lo, d);
            hi = std::max(hi, d);
        }
        m_diffMean[static_cast<size_t>(c)] = static_cast<float>(sum / static_cast<double>(end - first));
        m_diffLow[static_cast<size_t>(c)] = lo;
        m_diffHigh[static_cast<size_t>(c)] = hi;
    }
    // Scaled to the column means (the systematic difference); the min-max band may be clipped.
    float largest = 0;
    for (float m : m_diffMean)
        if (std::isfinite(m)) largest = std::max(largest, std::fabs(m));
    m_diffRange = std::max(1.25f * largest, 0.01f);
}

void CompareView::drawDifference(ViewContext& ctx, const ImVec2& size) {
    ImGui::InvisibleButton("##difference", size);
    const bool hovered = ImGui::IsItemHovered();
    const bool clicked = ImGui::IsItemClicked(ImGuiMouseButton_Left);
    const ImVec2 frame0 = ImGui::GetItemRectMin(), frame1 = ImGui::GetItemRectMax();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(frame0, frame1, ImGui::GetColorU32(ImGuiCol_FrameBg));
    const ImVec2 p0(frame0.x + kLeftMargin, frame0.y + kTopMargin + ImGui::GetTextLineHeight()),
        p1(frame1.x - kRightMargin, frame1.y - kBottomMargin);
    const int columns = static_cast<int>(p1.x - p0.x);
    dl->AddText(ImVec2(frame0.x + 4, frame0.y + 2), kAxisColor, "loss difference per token (compare - current)");
    if (columns < 10 || p1.y - p0.y < 20 || ctx.snap.analysis->tokenLoss.empty()) return;
    updateDifference(ctx, columns);
    const int64_t tokens = ctx.snap.analysis->numTokens;
    const float range = m_diffRange;
    auto yOf = [&](float d) { return 0.5f * (p0.y + p1.y) - 0.5f * (p1.y - p0.y) * std::clamp(d / range, -1.0f, 1.0f); };
    auto xOf = [&](double token) { return p0.x + (p1.x - p0.x) * static_cast<float>(token / static_cast<double>(tokens)); };

    char buf[32];
    for (float v : {-range, -0.5f * range, 0.0f, 0.5f * range, range}) {
        dl->AddLine(ImVec2(p0.x, yOf(v)), ImVec2(p1.x, yOf(v)), v == 0.0f ? kAxisColor : kGridColor);
        std::snprintf(buf, sizeof buf, "%+.2g", v);
        const ImVec2 ts = ImGui::CalcTextSize(buf);
        dl->AddText(ImVec2(p0.x - ts.x - 5, yOf(v) - 0.5f * ts.y), kAxisColor, buf);
    }
    const double xStep = niceStep(static_cast<double>(tokens), std::max(2, columns / 90));
    for (double t = 0; t < static_cast<double>(tokens); t += xStep) {
        const std::string label = tickLabel(t);
        dl->AddLine(ImVec2(xOf(t), p1.y), ImVec2(xOf(t), p1.y + 3), kAxisColor);
        dl->AddText(ImVec2(xOf(t) - 0.5f * ImGui::CalcTextSize(label.c_str()).x, p1.y + 3), kAxisColor, label.c_str());
    }
    dl->PushClipRect(p0, ImVec2(p1.x + 1, p1.y + 1), true);
    const float zero = yOf(0.0f);
    for (int c = 0; c < columns; ++c) {
        const float m = m_diffMean[static_cast<size_t>(c)];
        if (!std::isfinite(m)) continue;
        const float x = p0.x + static_cast<float>(c) + 0.5f;
        dl->AddLine(ImVec2(x, yOf(m_diffLow[static_cast<size_t>(c)])), ImVec2(x, yOf(m_diffHigh[static_cast<size_t>(c)])),
                    IM_COL32(200, 200, 200, 40));
        const float strength = 0.3f + 0.7f * std::min(std::fabs(m) / range, 1.0f);
        dl->AddLine(ImVec2(x, zero), ImVec2(x, yOf(m)), divergingColor(m >= 0 ? strength : -strength));
    }
    const int64_t context = ctx.snap.model->config.maxPositions;
    if (context > 0 && context < tokens) {
        const float x = xOf(static_cast<double>(context));
        dl->AddLine(ImVec2(x, p0.y), ImVec2(x, p1.y), kContextColor, 1.5f);
    }
    if (ctx.ui.queryToken >= 0 && ctx.ui.queryToken < tokens) {
        const float x = xOf(static_cast<double>(ctx.ui.queryToken) + 0.5);
        dl->AddLine(ImVec2(x, p0.y), ImVec2(x, p1.y), kSelectedColor, 1.5f);
    }
    dl->PopClipRect();

    ColumnHover hover;
    if (!beginColumnTooltip(hovered, p0, p1, columns, tokens, *ctx.snap.document, hover)) return;
    const int c = hover.column;
    const int64_t token = hover.token, first = hover.first, end = hover.end;
    const float m = m_diffMean[static_cast<size_t>(c)];
    if (std::isfinite(m)) {
        if (end - first == 1) ImGui::Text("compare - current: %+.4f nats", m);
        else ImGui::Text("compare - current: mean %+.4f, range %+.3f to %+.3f", m, m_diffLow[static_cast<size_t>(c)],
                         m_diffHigh[static_cast<size_t>(c)]);
    }
    ImGui::TextDisabled("red: compare predicts worse; click: select token %lld", static_cast<long long>(token));
    ImGui::EndTooltip();
    if (clicked) ctx.ui.queryToken = token;
}

}  // namespace

std::unique_ptr<View> makeCompareView() { return std::make_unique<CompareView>(); }

}  // namespace spanscope
