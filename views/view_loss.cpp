// Loss & sweep view: per-token loss along the document for the current pattern and the all-full
// baseline (summarised per pixel column: mean line, band up to the column's maximum), and the
// boundary sweep: perplexity against relative attention cost C for l = 0..L full layers.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "views/view.h"
#include "engine/analysis_rows.h"
#include "views/plot_util.h"
#include "views/views_list.h"

namespace spanscope {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kLeftMargin = 40.0f, kRightMargin = 10.0f, kTopMargin = 6.0f, kBottomMargin = 20.0f;
constexpr ImU32 kCurrentColor = IM_COL32(90, 170, 255, 255);
constexpr ImU32 kBaselineColor = IM_COL32(255, 160, 60, 255);
constexpr int kSmoothingWindows[] = {0, 16, 64, 256, 1024};
const char* const kSmoothingNames[] = {"no smoothing", "mean of 16", "mean of 64", "mean of 256", "mean of 1024"};




// Centred moving average over `window` values (prefix sums; the window shrinks at the ends).
std::vector<float> movingAverage(const std::vector<float>& v, int window) {
    if (window <= 1) return v;
    std::vector<double> prefix(v.size() + 1, 0.0);
    for (size_t i = 0; i < v.size(); ++i) prefix[i + 1] = prefix[i] + v[i];
    std::vector<float> out(v.size());
    const auto half = static_cast<size_t>(window / 2);
    for (size_t i = 0; i < v.size(); ++i) {
        const size_t lo = i >= half ? i - half : 0, hi = std::min(v.size(), i + half + 1);
        out[i] = static_cast<float>((prefix[hi] - prefix[lo]) / static_cast<double>(hi - lo));
    }
    return out;
}

// A per-token series summarised per pixel column. Series element i belongs to token i + 1 (the
// token it predicts); column c covers tokens [c·T/columns, (c+1)·T/columns).
struct ColumnSeries {
    std::shared_ptr<const AnalysisResult> source;
    int columns = 0;
    int smoothing = -1;
    std::vector<float> mean, peak;  // (columns), NaN where a column holds no loss
    float robustMax = 0;            // 99th percentile of the raw series

    void update(const std::shared_ptr<const AnalysisResult>& src, int64_t tokens, int numColumns, int window) {
        if (src == source && numColumns == columns && window == smoothing) return;
        if (src != source) robustMax = src ? percentile(src->tokenLoss, 0.99) : 0.0f;
        source = src;
        columns = numColumns;
        smoothing = window;
        mean.assign(static_cast<size_t>(numColumns), kNaN);
        peak.assign(static_cast<size_t>(numColumns), kNaN);
        if (!src || tokens < 2 || numColumns <= 0) return;
        const std::vector<float> series = movingAverage(src->tokenLoss, window);
        for (int c = 0; c < numColumns; ++c) {
            int64_t first = std::max<int64_t>(c * tokens / numColumns, 1), end = (c + 1) * tokens / numColumns;
            end = std::min<int64_t>(std::max(end, first + 1), static_cast<int64_t>(series.size()) + 1);
            double sum = 0;
            float top = -1e30f;
            for (int64_t t = first; t < end; ++t) {
                const float v = series[static_cast<size_t>(t - 1)];
                sum += v;
                top = std::max(top, v);
            }
            if (end > first) {
                mean[static_cast<size_t>(c)] = static_cast<float>(sum / static_cast<double>(end - first));
                peak[static_cast<size_t>(c)] = top;
            }
        }
    }
};

void legendSwatch(ImU32 color) {
    const float h = ImGui::GetTextLineHeight();
    const ImVec2 p = ImGui::GetCursorScreenPos();
    ImGui::GetWindowDrawList()->AddRectFilled(ImVec2(p.x, p.y + 0.25f * h), ImVec2(p.x + 0.5f * h, p.y + 0.75f * h), color);
    ImGui::Dummy(ImVec2(0.5f * h, h));
    ImGui::SameLine();
}

void verticalMarker(ImDrawList* dl, float x, float top, float bottom, ImU32 color, const char* label) {
    dl->AddLine(ImVec2(x, top), ImVec2(x, bottom), color, 1.5f);
    if (label) dl->AddText(ImVec2(x + 3, top), color, label);
}

class LossView final : public View {
public:
    const char* name() const override { return "Loss & sweep"; }
    void defaultRect(float& x, float& y, float& w, float& h) const override {
        x = 0.25f; y = 0.65f; w = 0.45f; h = 0.33f;
    }
    void drawContent(ViewContext& ctx) override;

private:
    void drawLossPlot(ViewContext& ctx, const ImVec2& size, int smoothing);
    void drawSweep(ViewContext& ctx, const ImVec2& size);

    ColumnSeries m_current, m_baseline;
    std::shared_ptr<const std::vector<SweepPoint>> m_sweep;
    int64_t m_sweepTailFrom = -1;
    std::vector<double> m_sweepTailLoss;  // mean loss from the training context on, per sweep point
};

void LossView::drawContent(ViewContext& ctx) {
    if (!requireAnalysis(ctx)) return;
    const AnalysisResult& a = *ctx.snap.analysis;
    if (a.numTokens != static_cast<int64_t>(ctx.snap.document->tokens.size())) {
        ImGui::TextDisabled("Analysing the new document...");
        return;
    }
    const int64_t context = ctx.snap.model->config.maxPositions;
    // The smoothing window is a display choice kept in ImGui's per-window storage.
    const ImGuiID smoothingId = ImGui::GetID("smoothing");
    int smoothing = std::clamp(ImGui::GetStateStorage()->GetInt(smoothingId, 0), 0, IM_ARRAYSIZE(kSmoothingWindows) - 1);
    ImGui::SetNextItemWidth(ImGui::CalcTextSize(kSmoothingNames[4]).x + ImGui::GetFrameHeight() * 2);
    if (ImGui::Combo("##smoothing", &smoothing, kSmoothingNames, IM_ARRAYSIZE(kSmoothingNames)))
        ImGui::GetStateStorage()->SetInt(smoothingId, smoothing);
    ImGui::SameLine(0, 16);
    legendSwatch(kCurrentColor);
    ImGui::Text("current: loss %.3f, ppl %.2f", a.meanLoss, a.perplexity);
    const double tail = meanLossFrom(a.tokenLoss, context);
    if (ctx.snap.baseline) {
        ImGui::SameLine(0, 16);
        legendSwatch(kBaselineColor);
        ImGui::Text("all-full: loss %.3f, ppl %.2f", ctx.snap.baseline->meanLoss, ctx.snap.baseline->perplexity);
        const double baseTail = meanLossFrom(ctx.snap.baseline->tokenLoss, context);
        if (std::isfinite(tail) && std::isfinite(baseTail)) {
            ImGui::SameLine(0, 16);
            ImGui::TextDisabled("after %lld: %.3f vs %.3f", static_cast<long long>(context), tail, baseTail);
        }
    } else {
        ImGui::SameLine(0, 16);
        ImGui::TextDisabled("%s", ctx.snap.busy ? "all-full: computing..." : "all-full: not computed");
    }

    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const float sweepHeight = std::max(avail.y * 0.5f, 140.0f);
    drawLossPlot(ctx, ImVec2(avail.x, std::max(avail.y - sweepHeight, 100.0f)), kSmoothingWindows[smoothing]);
    drawSweep(ctx, ImVec2(avail.x, ImGui::GetContentRegionAvail().y));
}

void LossView::drawLossPlot(ViewContext& ctx, const ImVec2& size, int smoothing) {
    const int64_t tokens = static_cast<int64_t>(ctx.snap.document->tokens.size());
    const int64_t context = ctx.snap.model->config.maxPositions;
    ImGui::InvisibleButton("##loss", size);
    const bool hovered = ImGui::IsItemHovered();
    const bool clicked = ImGui::IsItemClicked(ImGuiMouseButton_Left);
    const ImVec2 frame0 = ImGui::GetItemRectMin(), frame1 = ImGui::GetItemRectMax();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(frame0, frame1, ImGui::GetColorU32(ImGuiCol_FrameBg));
    const ImVec2 p0(frame0.x + kLeftMargin, frame0.y + kTopMargin), p1(frame1.x - kRightMargin, frame1.y - kBottomMargin);
    const int columns = static_cast<int>(p1.x - p0.x);
    if (columns < 10 || p1.y - p0.y < 20 || tokens < 2) return;

    const std::shared_ptr<const AnalysisResult> baseline =
        ctx.snap.baseline && ctx.snap.baseline->numTokens == tokens ? ctx.snap.baseline : nullptr;
    m_current.update(ctx.snap.analysis, tokens, columns, smoothing);
    m_baseline.update(baseline, tokens, columns, smoothing);
    float yMax = std::max({m_current.robustMax, m_baseline.robustMax, 1.0f}) * 1.15f;
    const float yStep = static_cast<float>(niceStep(yMax, 4));
    yMax = std::ceil(yMax / yStep) * yStep;
    auto xOf = [&](double token) { return p0.x + (p1.x - p0.x) * static_cast<float>(token / static_cast<double>(tokens)); };
    auto yOf = [&](float loss) { return p1.y - (p1.y - p0.y) * std::clamp(loss / yMax, 0.0f, 1.0f); };

    char buf[48];
    for (float v = 0; v <= yMax * 1.0001f; v += yStep) {
        dl->AddLine(ImVec2(p0.x, yOf(v)), ImVec2(p1.x, yOf(v)), kGridColor);
        std::snprintf(buf, sizeof buf, "%g", v);
        const ImVec2 ts = ImGui::CalcTextSize(buf);
        dl->AddText(ImVec2(p0.x - ts.x - 5, yOf(v) - 0.5f * ts.y), kAxisColor, buf);
    }
    const double xStep = std::max(1.0, niceStep(static_cast<double>(tokens), std::max(2, columns / 90)));
    for (double t = 0; t < static_cast<double>(tokens); t += xStep) {
        const std::string label = tickLabel(t);
        dl->AddLine(ImVec2(xOf(t), p1.y), ImVec2(xOf(t), p1.y + 3), kAxisColor);
        dl->AddText(ImVec2(xOf(t) - 0.5f * ImGui::CalcTextSize(label.c_str()).x, p1.y + 3), kAxisColor, label.c_str());
    }
    dl->AddLine(ImVec2(p0.x, p1.y), ImVec2(p1.x, p1.y), kAxisColor);

    dl->PushClipRect(p0, ImVec2(p1.x + 1, p1.y + 1), true);
    std::vector<ImVec2> line;
    auto drawSeries = [&](const ColumnSeries& s, ImU32 color) {
        const ImU32 band = (color & ~IM_COL32_A_MASK) | IM_COL32(0, 0, 0, 45);
        line.clear();
        for (int c = 0; c <= columns; ++c) {
            const bool valid = c < columns && std::isfinite(s.mean[static_cast<size_t>(c)]);
            if (valid) {
                const float x = p0.x + static_cast<float>(c) + 0.5f;
                dl->AddLine(ImVec2(x, yOf(s.mean[static_cast<size_t>(c)])), ImVec2(x, yOf(s.peak[static_cast<size_t>(c)])), band);
                line.push_back(ImVec2(x, yOf(s.mean[static_cast<size_t>(c)])));
            }
            if (!valid && !line.empty()) {
                dl->AddPolyline(line.data(), static_cast<int>(line.size()), color, 0, 1.5f);
                line.clear();
            }
        }
    };
    if (baseline) drawSeries(m_baseline, kBaselineColor);
    drawSeries(m_current, kCurrentColor);
    if (context > 0 && context < tokens) {
        std::snprintf(buf, sizeof buf, "training context %lld", static_cast<long long>(context));
        verticalMarker(dl, xOf(static_cast<double>(context)), p0.y, p1.y, kContextColor, buf);
    }
    if (ctx.ui.queryToken >= 0 && ctx.ui.queryToken < tokens)
        verticalMarker(dl, xOf(static_cast<double>(ctx.ui.queryToken) + 0.5), p0.y, p1.y, kSelectedColor, nullptr);
    dl->PopClipRect();

    ColumnHover hover;
    if (!beginColumnTooltip(hovered, p0, p1, columns, tokens, *ctx.snap.document, hover)) return;
    const int c = hover.column;
    const int64_t token = hover.token, first = hover.first, end = hover.end;
    auto describe = [&](const char* label, const ColumnSeries& s) {
        const float m = s.mean[static_cast<size_t>(c)], p = s.peak[static_cast<size_t>(c)];
        if (!std::isfinite(m)) return;
        if (end - first == 1) ImGui::Text("%-9s %.3f", label, m);
        else ImGui::Text("%-9s mean %.3f, max %.3f", label, m, p);
    };
    describe("current", m_current);
    if (baseline) describe("all-full", m_baseline);
    ImGui::TextDisabled("click: select token %lld", static_cast<long long>(token));
    ImGui::EndTooltip();
    if (clicked) ctx.ui.queryToken = token;
}

void LossView::drawSweep(ViewContext& ctx, const ImVec2& size) {
    const Snapshot& snap = ctx.snap;
    const int64_t context = snap.model->config.maxPositions;
    const bool sweeping = snap.busy && snap.task == "boundary sweep";
    ImGui::BeginDisabled(sweeping || !ctx.actions.runSweep);
    if (ImGui::Button("Run boundary sweep")) ctx.actions.runSweep();
    ImGui::EndDisabled();
    ImGui::SameLine();
    if (sweeping) {
        ImGui::ProgressBar(static_cast<float>(snap.progress), ImVec2(-1, 0), "sweeping...");
    } else if (snap.sweep && !snap.sweep->empty()) {
        ImGui::TextDisabled("l full layers, %s above%s", snap.sweepSparse.text().c_str(),
                            snap.sweepSparse != ctx.ui.sparseSpec() ? " (not the current sparse setting)" : "");
    } else {
        ImGui::TextDisabled("perplexity against cost for l = 0..%lld full layers, %s above",
                            static_cast<long long>(snap.model->config.numLayers), ctx.ui.sparseSpec().text().c_str());
    }
    if (!snap.sweep || snap.sweep->empty()) return;
    const auto& points = *snap.sweep;
    if (snap.sweep != m_sweep || context != m_sweepTailFrom) {
        m_sweep = snap.sweep;
        m_sweepTailFrom = context;
        m_sweepTailLoss.clear();
        for (const SweepPoint& p : points) m_sweepTailLoss.push_back(meanLossFrom(p.tokenLoss, context));
    }
    const int current = snap.sweepSparse == ctx.ui.sparseSpec() ? ctx.ui.boundary : -1;

    // Plot: perplexity against C.
    const float height = std::max(ImGui::GetContentRegionAvail().y, 80.0f);
    const ImVec2 plotSize(std::floor(size.x * 0.58f), height);
    ImGui::InvisibleButton("##sweep", plotSize);
    const bool hovered = ImGui::IsItemHovered();
    const bool clicked = ImGui::IsItemClicked(ImGuiMouseButton_Left);
    const ImVec2 frame0 = ImGui::GetItemRectMin(), frame1 = ImGui::GetItemRectMax();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(frame0, frame1, ImGui::GetColorU32(ImGuiCol_FrameBg));
    const ImVec2 p0(frame0.x + kLeftMargin + 6, frame0.y + kTopMargin + 2.0f * ImGui::GetTextLineHeight()),
        p1(frame1.x - kRightMargin - 6, frame1.y - kBottomMargin);
    double pMin = 1e30, pMax = -1e30, cMin = 1e30, cMax = -1e30;
    for (const SweepPoint& p : points) {
        pMin = std::min(pMin, p.perplexity);
        pMax = std::max(pMax, p.perplexity);
        cMin = std::min(cMin, p.relativeCost);
        cMax = std::max(cMax, p.relativeCost);
    }
    const double pad = std::max((pMax - pMin) * 0.1, 0.01 * pMax);
    pMin -= pad;
    pMax += pad;
    const double cPad = std::max((cMax - cMin) * 0.05, 0.005);
    cMin = std::max(0.0, cMin - cPad);
    cMax = std::min(1.0, cMax + cPad);
    auto toScreen = [&](double c, double ppl) {
        return ImVec2(p0.x + (p1.x - p0.x) * static_cast<float>((c - cMin) / (cMax - cMin)),
                      p1.y - (p1.y - p0.y) * static_cast<float>((ppl - pMin) / (pMax - pMin)));
    };
    char buf[32];
    const double yStep = niceStep(pMax - pMin, 3);
    for (double v = std::ceil(pMin / yStep) * yStep; v <= pMax; v += yStep) {
        const float y = toScreen(0, v).y;
        dl->AddLine(ImVec2(p0.x, y), ImVec2(p1.x, y), kGridColor);
        std::snprintf(buf, sizeof buf, "%g", v);
        dl->AddText(ImVec2(p0.x - ImGui::CalcTextSize(buf).x - 5, y - 0.5f * ImGui::GetTextLineHeight()), kAxisColor, buf);
    }
    const double xStep = niceStep(cMax - cMin, 4);
    for (double c = std::ceil(cMin / xStep) * xStep; c <= cMax + 1e-9; c += xStep) {
        const float x = toScreen(c, pMin).x;
        std::snprintf(buf, sizeof buf, "%g", c);
        dl->AddLine(ImVec2(x, p1.y), ImVec2(x, p1.y + 3), kAxisColor);
        dl->AddText(ImVec2(x - 0.5f * ImGui::CalcTextSize(buf).x, p1.y + 3), kAxisColor, buf);
    }
    dl->AddLine(ImVec2(p0.x, p1.y), ImVec2(p1.x, p1.y), kAxisColor);
    dl->AddText(ImVec2(frame0.x + 4, frame0.y + 2), kAxisColor, "perplexity against relative cost C");

    std::vector<ImVec2> screen;
    for (const SweepPoint& p : points) screen.push_back(toScreen(p.relativeCost, p.perplexity));
    dl->AddPolyline(screen.data(), static_cast<int>(screen.size()), kCurrentColor, 0, 1.5f);
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    int hoverIndex = -1;
    float best = 100.0f;
    for (size_t i = 0; i < points.size(); ++i) {
        const bool isCurrent = points[i].boundary == current;
        dl->AddCircleFilled(screen[i], isCurrent ? 5.0f : 3.0f, isCurrent ? kSelectedColor : kCurrentColor);
        if (isCurrent) dl->AddCircle(screen[i], 8.0f, kSelectedColor, 0, 1.5f);
        std::snprintf(buf, sizeof buf, "%d", points[i].boundary);
        dl->AddText(ImVec2(screen[i].x + 4, screen[i].y - ImGui::GetTextLineHeight() - 1), kAxisColor, buf);
        const float dx = screen[i].x - mouse.x, dy = screen[i].y - mouse.y;
        if (hovered && dx * dx + dy * dy < best) {
            best = dx * dx + dy * dy;
            hoverIndex = static_cast<int>(i);
        }
    }
    if (hoverIndex >= 0) {
        const SweepPoint& p = points[static_cast<size_t>(hoverIndex)];
        ImGui::SetTooltip("l = %d full layers\nC = %.3f\nloss %.4f, perplexity %.3f\nclick: set the boundary", p.boundary,
                          p.relativeCost, p.meanLoss, p.perplexity);
        if (clicked) ctx.ui.boundary = p.boundary;
    }

    // Table beside the plot.
    ImGui::SameLine();
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                  ImGuiTableFlags_SizingStretchProp;
    if (!ImGui::BeginTable("##sweepTable", 5, flags, ImVec2(0, height))) return;
    std::snprintf(buf, sizeof buf, "loss >= %lld", static_cast<long long>(context));
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("l");
    ImGui::TableSetupColumn("C");
    ImGui::TableSetupColumn("loss");
    ImGui::TableSetupColumn("ppl");
    ImGui::TableSetupColumn(buf);
    ImGui::TableHeadersRow();
    for (size_t i = 0; i < points.size(); ++i) {
        const SweepPoint& p = points[i];
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        std::snprintf(buf, sizeof buf, "%d", p.boundary);
        if (ImGui::Selectable(buf, p.boundary == current, ImGuiSelectableFlags_SpanAllColumns)) ctx.ui.boundary = p.boundary;
        ImGui::TableNextColumn();
        ImGui::Text("%.3f", p.relativeCost);
        ImGui::TableNextColumn();
        ImGui::Text("%.4f", p.meanLoss);
        ImGui::TableNextColumn();
        ImGui::Text("%.3f", p.perplexity);
        ImGui::TableNextColumn();
        if (i < m_sweepTailLoss.size() && std::isfinite(m_sweepTailLoss[i])) ImGui::Text("%.4f", m_sweepTailLoss[i]);
        else ImGui::TextDisabled("-");
    }
    ImGui::EndTable();
}

}  // namespace

std::unique_ptr<View> makeLossView() { return std::make_unique<LossView>(); }

}  // namespace spanscope
