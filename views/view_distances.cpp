// Distances view: per layer, the attention mass as a function of query-key distance in log2 bins
// (or cumulative: the mass within distance d), all layers overlaid, full layers in warm solid
// lines and sparse layers in cool dashed ones; the sparse span as a marker; a table of the
// per-layer statistics below.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "views/view.h"
#include "views/plot_util.h"
#include "views/views_list.h"

namespace spanscope {
namespace {

constexpr float kLeftMargin = 46.0f, kRightMargin = 12.0f, kTopMargin = 10.0f, kBottomMargin = 34.0f;
constexpr float kHoverRadius = 10.0f;
constexpr float kMinTickSpacing = 34.0f;
constexpr ImU32 kSpanColor = IM_COL32(250, 220, 90, 220);

// Bin of a query-key distance: 0 for d = 0, floor(log2 d) + 1 otherwise (as the engine bins).
int distanceBin(int64_t d) {
    int b = 0;
    while (d > 0) { d >>= 1; ++b; }
    return b;
}

// Distance at the left edge of position u on the axis: u = 0 -> 0, u = k -> 2^(k-1).
std::string distanceLabel(int u) {
    if (u <= 0) return "0";
    const double d = std::ldexp(1.0, u - 1);
    char buf[32];
    if (d >= 1048576.0) std::snprintf(buf, sizeof buf, "%.0fM", d / 1048576.0);
    else if (d >= 1024.0) std::snprintf(buf, sizeof buf, "%.0fk", d / 1024.0);
    else std::snprintf(buf, sizeof buf, "%.0f", d);
    return buf;
}

std::string binLabel(int bin, bool cumulative) {
    if (cumulative) return "distance < " + distanceLabel(bin + 1);
    if (bin == 0) return "distance 0";
    return "distance " + distanceLabel(bin) + " to " + distanceLabel(bin + 1) + " (excl.)";
}



// Full layers: warm hues; sparse layers: cool hues; shaded by position within the group.
ImU32 layerColor(const LayerPattern& pattern, int layer, float alpha) {
    int fullCount = 0, sparseCount = 0, index = 0;
    const bool full = pattern.layers[static_cast<size_t>(layer)].kind == AttentionKind::Full;
    for (size_t l = 0; l < pattern.layers.size(); ++l) {
        const bool f = pattern.layers[l].kind == AttentionKind::Full;
        if (static_cast<int>(l) == layer) index = f ? fullCount : sparseCount;
        (f ? fullCount : sparseCount)++;
    }
    const float frac = static_cast<float>(index) / static_cast<float>(std::max(full ? fullCount - 1 : sparseCount - 1, 1));
    const float hue = full ? 0.0f + 0.13f * frac : 0.50f + 0.22f * frac;
    return ImColor::HSV(hue, 0.70f, 0.95f, alpha);
}

void addDashedPolyline(ImDrawList* dl, const std::vector<ImVec2>& points, ImU32 color, float thickness) {
    constexpr float kDash = 6.0f, kGap = 4.0f;
    float phase = 0;
    bool on = true;
    for (size_t i = 1; i < points.size(); ++i) {
        const ImVec2 a = points[i - 1], b = points[i];
        const float len = std::hypot(b.x - a.x, b.y - a.y);
        float pos = 0;
        while (pos < len) {
            const float seg = std::min((on ? kDash : kGap) - phase, len - pos);
            if (on) {
                const float t0 = pos / len, t1 = (pos + seg) / len;
                dl->AddLine(ImVec2(a.x + (b.x - a.x) * t0, a.y + (b.y - a.y) * t0),
                            ImVec2(a.x + (b.x - a.x) * t1, a.y + (b.y - a.y) * t1), color, thickness);
            }
            pos += seg;
            phase += seg;
            if (phase >= (on ? kDash : kGap)) {
                phase = 0;
                on = !on;
            }
        }
    }
}

void drawLayerLine(ImDrawList* dl, const std::vector<ImVec2>& points, bool sparse, ImU32 color, float thickness) {
    if (sparse) addDashedPolyline(dl, points, color, thickness);
    else dl->AddPolyline(points.data(), static_cast<int>(points.size()), color, 0, thickness);
}

class DistancesView final : public View {
public:
    const char* name() const override { return "Distances"; }
    void defaultRect(float& x, float& y, float& w, float& h) const override {
        x = 0.70f; y = 0.03f; w = 0.30f; h = 0.40f;
    }
    void drawContent(ViewContext& ctx) override;

private:
    void drawPlot(ViewContext& ctx, const AnalysisResult& a, const ImVec2& size);
    void drawTable(ViewContext& ctx, const AnalysisResult& a, float height);
};

void DistancesView::drawContent(ViewContext& ctx) {
    if (!requireAnalysis(ctx)) return;
    const AnalysisResult& a = *ctx.snap.analysis;
    UiState& ui = ctx.ui;
    ImGui::Checkbox("Cumulative", &ui.distanceCumulative);
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("Plot the mass within distance d instead of the mass per bin");
    ImGui::SameLine();
    const int heads = a.layers.empty() ? 0 : static_cast<int>(a.layers.front().heads.size());
    char preview[32];
    if (ui.head >= 0) std::snprintf(preview, sizeof preview, "head %d", ui.head);
    else std::snprintf(preview, sizeof preview, "mean of heads");
    ImGui::SetNextItemWidth(ImGui::CalcTextSize("mean of heads").x + ImGui::GetFrameHeight() * 2);
    if (ImGui::BeginCombo("##head", preview)) {
        if (ImGui::Selectable("mean of heads", ui.head < 0)) ui.head = -1;
        for (int h = 0; h < heads; ++h) {
            std::snprintf(preview, sizeof preview, "head %d", h);
            if (ImGui::Selectable(preview, ui.head == h)) ui.head = h;
        }
        ImGui::EndCombo();
    }
    ImGui::SameLine();
    ImGui::TextDisabled("solid: full, dashed: sparse");
    if (a.layers.empty() || a.layers.front().heads.empty()) {
        ImGui::TextDisabled("This analysis has no attention statistics.");
        return;
    }
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const float rowHeight = ImGui::GetTextLineHeightWithSpacing();
    const float tableHeight = std::min(rowHeight * (static_cast<float>(a.layers.size()) + 1.5f), avail.y * 0.45f);
    drawPlot(ctx, a, ImVec2(avail.x, std::max(avail.y - tableHeight - ImGui::GetStyle().ItemSpacing.y, 120.0f)));
    drawTable(ctx, a, tableHeight);
}

void DistancesView::drawPlot(ViewContext& ctx, const AnalysisResult& a, const ImVec2& size) {
    UiState& ui = ctx.ui;
    const bool cumulative = ui.distanceCumulative;
    const int numLayers = static_cast<int>(a.layers.size());
    const int storedBins = static_cast<int>(a.layers.front().headMean.binMass.size());
    const int numBins = std::clamp(distanceBin(std::max<int64_t>(a.numTokens - 1, 0)) + 1, 1, std::max(storedBins, 1));
    const int selected = std::clamp(ui.layer, 0, numLayers - 1);

    ImGui::InvisibleButton("##plot", size);
    const bool hovered = ImGui::IsItemHovered();
    const bool clicked = ImGui::IsItemClicked(ImGuiMouseButton_Left);
    const ImVec2 frame0 = ImGui::GetItemRectMin(), frame1 = ImGui::GetItemRectMax();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(frame0, frame1, ImGui::GetColorU32(ImGuiCol_FrameBg));
    const ImVec2 p0(frame0.x + kLeftMargin, frame0.y + kTopMargin), p1(frame1.x - kRightMargin, frame1.y - kBottomMargin);
    if (p1.x - p0.x < 20 || p1.y - p0.y < 20) return;

    // Series: x in axis units u (u = k is distance 2^(k-1)), y in mass.
    std::vector<std::vector<ImVec2>> series(static_cast<size_t>(numLayers));
    float yMax = cumulative ? 1.0f : 0.0f;
    for (int l = 0; l < numLayers; ++l) {
        const HeadStats* s = headStatsOf(a.layers[static_cast<size_t>(l)], ui.head);
        if (!s || s->binMass.empty()) continue;
        auto& pts = series[static_cast<size_t>(l)];
        double sum = 0;
        if (cumulative) pts.push_back(ImVec2(0.0f, 0.0f));
        for (int k = 0; k < numBins && k < static_cast<int>(s->binMass.size()); ++k) {
            const double m = s->binMass[static_cast<size_t>(k)];
            sum += m;
            if (cumulative) pts.push_back(ImVec2(static_cast<float>(k + 1), static_cast<float>(std::min(sum, 1.0))));
            else pts.push_back(ImVec2(static_cast<float>(k) + 0.5f, static_cast<float>(m)));
            if (!cumulative) yMax = std::max(yMax, static_cast<float>(m));
        }
    }
    if (!cumulative) yMax = std::max(yMax * 1.1f, 0.01f);
    const float yStep = static_cast<float>(niceStep(yMax, 4));
    if (!cumulative) yMax = std::ceil(yMax / yStep) * yStep;
    auto toScreen = [&](const ImVec2& v) {
        return ImVec2(p0.x + (p1.x - p0.x) * v.x / static_cast<float>(numBins), p1.y - (p1.y - p0.y) * v.y / yMax);
    };

    // Axes, grid and ticks.
    char buf[32];
    for (float v = 0; v <= yMax * 1.0001f; v += yStep) {
        const float y = toScreen(ImVec2(0, v)).y;
        dl->AddLine(ImVec2(p0.x, y), ImVec2(p1.x, y), kGridColor);
        std::snprintf(buf, sizeof buf, "%.2g", v);
        const ImVec2 ts = ImGui::CalcTextSize(buf);
        dl->AddText(ImVec2(p0.x - ts.x - 5, y - ts.y * 0.5f), kAxisColor, buf);
    }
    const float binWidth = (p1.x - p0.x) / static_cast<float>(numBins);
    const int labelEvery = std::max(1, static_cast<int>(std::ceil(kMinTickSpacing / binWidth)));
    for (int u = 0; u <= numBins; ++u) {
        const float x = toScreen(ImVec2(static_cast<float>(u), 0)).x;
        dl->AddLine(ImVec2(x, p1.y), ImVec2(x, p1.y + 4), kAxisColor);
        if (u % labelEvery) continue;
        const std::string label = distanceLabel(u);
        const ImVec2 ts = ImGui::CalcTextSize(label.c_str());
        dl->AddText(ImVec2(x - ts.x * 0.5f, p1.y + 5), kAxisColor, label.c_str());
    }
    dl->AddLine(ImVec2(p0.x, p1.y), ImVec2(p1.x, p1.y), kAxisColor);
    dl->AddLine(ImVec2(p0.x, p0.y), ImVec2(p0.x, p1.y), kAxisColor);
    const char* xTitle = "query-key distance (log2 bins)";
    dl->AddText(ImVec2(0.5f * (p0.x + p1.x - ImGui::CalcTextSize(xTitle).x), frame1.y - ImGui::GetTextLineHeight() - 2),
                kAxisColor, xTitle);
    dl->AddText(ImVec2(p0.x + 6, p0.y), kAxisColor, cumulative ? "mass at distance < d" : "attention mass per bin");

    dl->PushClipRect(ImVec2(p0.x, frame0.y), ImVec2(p1.x + 1, p1.y + 1), true);
    if (ui.sparseSpan > 0) {
        const float u = static_cast<float>(std::log2(static_cast<double>(ui.sparseSpan))) + 1.0f;
        const float x = toScreen(ImVec2(u, 0)).x;
        dl->AddLine(ImVec2(x, p0.y), ImVec2(x, p1.y), kSpanColor, 1.5f);
        std::snprintf(buf, sizeof buf, "span %lld", static_cast<long long>(ui.sparseSpan));
        const float labelWidth = ImGui::CalcTextSize(buf).x;
        const float labelX = x + 3 + labelWidth < p1.x ? x + 3 : x - 3 - labelWidth;
        dl->AddText(ImVec2(labelX, p0.y + ImGui::GetTextLineHeight()), kSpanColor, buf);
    }

    // Hover: the nearest point of any layer.
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    int hoverLayer = -1, hoverPoint = -1;
    float best = kHoverRadius * kHoverRadius;
    std::vector<std::vector<ImVec2>> screen(series.size());
    for (int l = 0; l < numLayers; ++l) {
        for (const ImVec2& v : series[static_cast<size_t>(l)]) screen[static_cast<size_t>(l)].push_back(toScreen(v));
        if (!hovered) continue;
        const auto& pts = screen[static_cast<size_t>(l)];
        for (size_t i = 0; i < pts.size(); ++i) {
            const float dx = pts[i].x - mouse.x, dy = pts[i].y - mouse.y, d2 = dx * dx + dy * dy;
            if (d2 < best || (d2 <= best && l == selected)) {
                best = d2;
                hoverLayer = l;
                hoverPoint = static_cast<int>(i);
            }
        }
    }
    auto drawLayer = [&](int l, bool emphasised) {
        const auto& pts = screen[static_cast<size_t>(l)];
        if (pts.size() < 2) return;
        const bool sparse = a.pattern.layers.size() == a.layers.size() &&
                            a.pattern.layers[static_cast<size_t>(l)].kind != AttentionKind::Full;
        const ImU32 color = layerColor(a.pattern, l, emphasised ? 1.0f : 0.55f);
        drawLayerLine(dl, pts, sparse, color, emphasised ? 3.0f : 1.5f);
        if (emphasised)
            for (const ImVec2& p : pts) dl->AddCircleFilled(p, 2.5f, color);
    };
    if (a.pattern.layers.size() == a.layers.size()) {
        for (int l = 0; l < numLayers; ++l)
            if (l != selected && l != hoverLayer) drawLayer(l, false);
        if (hoverLayer >= 0 && hoverLayer != selected) drawLayer(hoverLayer, true);
        drawLayer(selected, true);
    }
    dl->PopClipRect();

    if (hoverLayer >= 0) {
        const auto& s = series[static_cast<size_t>(hoverLayer)][static_cast<size_t>(hoverPoint)];
        const int bin = cumulative ? static_cast<int>(s.x) - 1 : static_cast<int>(s.x);
        dl->AddCircle(screen[static_cast<size_t>(hoverLayer)][static_cast<size_t>(hoverPoint)], 5.0f,
                      IM_COL32(255, 255, 255, 255), 0, 1.5f);
        ImGui::BeginTooltip();
        ImGui::Text("layer %d (%s)", hoverLayer, a.layers[static_cast<size_t>(hoverLayer)].spec.text().c_str());
        if (bin < 0) ImGui::Text("nothing below distance 0");
        else ImGui::Text("%s: %.4f", binLabel(bin, cumulative).c_str(), s.y);
        ImGui::TextDisabled("click: select layer");
        ImGui::EndTooltip();
        if (clicked) ui.layer = hoverLayer;
    } else if (hovered && mouse.x >= p0.x && mouse.x < p1.x) {
        const int u = std::clamp(static_cast<int>((mouse.x - p0.x) / binWidth), 0, numBins - 1);
        const auto& pts = series[static_cast<size_t>(selected)];
        const size_t i = static_cast<size_t>(cumulative ? u + 1 : u);
        ImGui::BeginTooltip();
        ImGui::Text("%s", binLabel(u, cumulative).c_str());
        if (i < pts.size()) ImGui::Text("layer %d: %.4f", selected, pts[i].y);
        ImGui::EndTooltip();
    }
}

void DistancesView::drawTable(ViewContext& ctx, const AnalysisResult& a, float height) {
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                  ImGuiTableFlags_SizingStretchProp;
    if (!ImGui::BeginTable("##layers", 6, flags, ImVec2(0, height))) return;
    char beyondHeader[48];
    std::snprintf(beyondHeader, sizeof beyondHeader, "Mass >= %lld", static_cast<long long>(a.beyondSpan));
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("Layer");
    ImGui::TableSetupColumn("Kind");
    ImGui::TableSetupColumn("Mean dist");
    ImGui::TableSetupColumn("Entropy");
    ImGui::TableSetupColumn(beyondHeader);
    ImGui::TableSetupColumn("Sink");
    ImGui::TableHeadersRow();
    const bool colored = a.pattern.layers.size() == a.layers.size();
    for (int l = 0; l < static_cast<int>(a.layers.size()); ++l) {
        const LayerAnalysis& la = a.layers[static_cast<size_t>(l)];
        const HeadStats* s = headStatsOf(la, ctx.ui.head);
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        char label[16];
        std::snprintf(label, sizeof label, "%d", l);
        if (ImGui::Selectable(label, l == ctx.ui.layer, ImGuiSelectableFlags_SpanAllColumns)) ctx.ui.layer = l;
        ImGui::TableNextColumn();
        if (colored) {
            const ImVec2 p = ImGui::GetCursorScreenPos();
            const float h = ImGui::GetTextLineHeight();
            const std::vector<ImVec2> swatch = {ImVec2(p.x, p.y + 0.5f * h), ImVec2(p.x + 18, p.y + 0.5f * h)};
            drawLayerLine(ImGui::GetWindowDrawList(), swatch, la.spec.kind != AttentionKind::Full,
                          layerColor(a.pattern, l, 1.0f), 2.0f);
            ImGui::Dummy(ImVec2(20, h));
            ImGui::SameLine();
        }
        ImGui::TextUnformatted(la.spec.text().c_str());
        if (!s) continue;
        ImGui::TableNextColumn();
        ImGui::Text("%.1f", s->meanDistance);
        ImGui::TableNextColumn();
        ImGui::Text("%.2f", s->entropy);
        ImGui::TableNextColumn();
        ImGui::Text("%.3f", s->beyondMass);
        ImGui::TableNextColumn();
        ImGui::Text("%.3f", s->sinkMass);
    }
    ImGui::EndTable();
}

}  // namespace

std::unique_ptr<View> makeDistancesView() { return std::make_unique<DistancesView>(); }

}  // namespace spanscope
