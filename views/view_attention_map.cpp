// Attention map: the pooled attention matrix of one layer (one head or the head mean) as a GL
// texture, log or linear colour with a colour bar, the layer's sparse pattern drawn over it, and
// zoom/pan down to exact token cells — the app asks the engine for the visible region at full
// resolution once the view settles; until then the last map is shown stretched.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "views/colormap.h"
#include "views/gl_texture.h"
#include "views/views_list.h"

namespace spanscope {
namespace {

constexpr float kDecades = 4.0f;  // log colour range below the maximum

class AttentionMapView : public View {
public:
    const char* name() const override { return "Attention map"; }
    void defaultRect(float& x, float& y, float& w, float& h) const override { x = 0; y = 0.53f; w = 0.25f; h = 0.45f; }

    void drawContent(ViewContext& ctx) override {
        UiState& ui = ctx.ui;
        const int L = static_cast<int>(ctx.snap.model->config.numLayers);
        ImGui::SetNextItemWidth(110);
        ImGui::SliderInt("layer", &ui.layer, 0, L - 1);
        ui.layer = std::clamp(ui.layer, 0, L - 1);
        ImGui::SameLine();
        ImGui::Checkbox("log", &ui.mapLog);
        ImGui::SameLine();
        ImGui::Checkbox("pattern", &ui.mapOverlay);
        ImGui::SameLine();
        if (ImGui::SmallButton("reset zoom")) resetZoom(ui);
        if (!requireAnalysis(ctx)) return;
        const AnalysisResult& a = *ctx.snap.analysis;
        const LayerAnalysis& la = a.layers[static_cast<size_t>(ui.layer)];
        if (la.poolRows == 0 || la.pooled.empty()) {
            ImGui::TextDisabled("No map for this layer.");
            return;
        }
        updateTexture(ctx.snap.analysis, la, ui);
        drawCanvas(a, la, ui);
    }

private:
    static void resetZoom(UiState& ui) { ui.mapX0 = ui.mapY0 = 0; ui.mapX1 = ui.mapY1 = 1; }

    void updateTexture(const std::shared_ptr<const AnalysisResult>& a, const LayerAnalysis& la, const UiState& ui) {
        if (a == m_source && ui.layer == m_layer && ui.head == m_head && ui.mapLog == m_log) return;
        m_source = a;
        m_layer = ui.layer;
        m_head = ui.head;
        m_log = ui.mapLog;
        const int rows = static_cast<int>(la.poolRows), cols = static_cast<int>(la.poolCols);
        const int H = static_cast<int>(la.pooled.size() / (static_cast<size_t>(rows) * static_cast<size_t>(cols)));
        m_values.assign(static_cast<size_t>(rows) * static_cast<size_t>(cols), 0.0f);
        for (size_t c = 0; c < m_values.size(); ++c) {
            if (ui.head >= 0 && ui.head < H) m_values[c] = la.pooled[static_cast<size_t>(ui.head) * m_values.size() + c];
            else {
                float s = 0;
                for (int h = 0; h < H; ++h) s += la.pooled[static_cast<size_t>(h) * m_values.size() + c];
                m_values[c] = s / static_cast<float>(H);
            }
        }
        m_max = *std::max_element(m_values.begin(), m_values.end());
        std::vector<uint32_t> pixels(m_values.size());
        for (size_t c = 0; c < m_values.size(); ++c) pixels[c] = heatColor(colorValue(m_values[c]));
        m_texture.upload(pixels, cols, rows);
    }

    float colorValue(float v) const {
        if (m_max <= 0) return 0;
        if (!m_log) return v / m_max;
        if (v <= 0) return 0;
        return std::max(0.0f, 1.0f + std::log10(v / m_max) / kDecades);
    }

    void drawCanvas(const AnalysisResult& a, const LayerAnalysis& la, UiState& ui) {
        const float T = static_cast<float>(a.numTokens);
        const ImVec2 avail = ImGui::GetContentRegionAvail();
        const float side = std::max(64.0f, std::min(avail.x - 80.0f, avail.y - 24.0f));
        const ImVec2 c0 = ImGui::GetCursorScreenPos();
        ImGui::InvisibleButton("##map", ImVec2(side, side));
        const bool hovered = ImGui::IsItemHovered();
        ImDrawList* dl = ImGui::GetWindowDrawList();
        const ImVec2 c1(c0.x + side, c0.y + side);
        // Token coordinates of the view, and their mapping to the screen.
        const float vk0 = ui.mapX0 * T, vk1 = ui.mapX1 * T, vq0 = ui.mapY0 * T, vq1 = ui.mapY1 * T;
        auto sx = [&](float k) { return c0.x + (k - vk0) / (vk1 - vk0) * side; };
        auto sy = [&](float q) { return c0.y + (q - vq0) / (vq1 - vq0) * side; };
        dl->AddRectFilled(c0, c1, heatColor(0.0f));
        dl->PushClipRect(c0, c1, true);
        dl->AddImage(m_texture.id(), ImVec2(sx(static_cast<float>(a.mapK0)), sy(static_cast<float>(a.mapQ0))),
                     ImVec2(sx(static_cast<float>(a.mapK1)), sy(static_cast<float>(a.mapQ1))));
        if (ui.mapOverlay) drawPattern(dl, la.spec, vk0, vk1, vq0, vq1, sx, sy);
        if (ui.mapOverlay) drawSelections(dl, a, la, ui, vk0, vk1, vq0, vq1, sx, sy);
        if (ui.queryToken >= 0) {
            const float y = sy(static_cast<float>(ui.queryToken) + 0.5f);
            dl->AddLine(ImVec2(c0.x, y), ImVec2(c1.x, y), IM_COL32(255, 255, 255, 160));
        }
        dl->PopClipRect();
        dl->AddRect(c0, c1, IM_COL32(160, 160, 160, 255));
        char buf[96];
        std::snprintf(buf, sizeof buf, "keys %.0f..%.0f", vk0, vk1);
        dl->AddText(ImVec2(c0.x, c1.y + 2), IM_COL32(200, 200, 200, 255), buf);
        std::snprintf(buf, sizeof buf, "queries %.0f..%.0f (down)", vq0, vq1);
        dl->AddText(ImVec2(c0.x + side * 0.5f, c1.y + 2), IM_COL32(200, 200, 200, 255), buf);
        const float lo = m_log ? std::log10(std::max(m_max, 1e-30f)) - kDecades : 0.0f;
        const float hi = m_log ? std::log10(std::max(m_max, 1e-30f)) : m_max;
        drawColorBar(dl, ImVec2(c1.x + 10, c0.y + 8), ImVec2(14, side - 40), lo, hi, m_log, m_log ? "log10" : "mass");
        handleInput(ui, a, la, hovered, c0, side, T, vk0, vk1, vq0, vq1);
    }

    template <typename Sx, typename Sy>
    static void drawPattern(ImDrawList* dl, const LayerSpec& s, float vk0, float vk1, float vq0, float vq1, Sx sx, Sy sy) {
        const uint32_t col = IM_COL32(255, 255, 255, 200);
        // Causal diagonal j = i (the right edge of every row's keys).
        dl->AddLine(ImVec2(sx(vq0 + 1), sy(vq0)), ImVec2(sx(vq1 + 1), sy(vq1)), col, 1.5f);
        if (s.kind == AttentionKind::Window || s.kind == AttentionKind::SparseK) {
            const float w = static_cast<float>(s.span);  // keys j > i - w
            dl->AddLine(ImVec2(sx(vq0 - w + 1), sy(vq0)), ImVec2(sx(vq1 - w + 1), sy(vq1)), col, 1.5f);
        } else if (s.kind == AttentionKind::Block) {
            const float b = static_cast<float>(s.span);
            const int first = static_cast<int>(std::floor(std::min(vq0, vk0) / b));
            const int last = static_cast<int>(std::ceil(std::max(vq1, vk1) / b));
            if (last - first > 256) return;
            for (int blk = first; blk <= last; ++blk) {
                const float q0 = blk * b, q1 = (blk + 1) * b;
                const float k0 = s.prevBlock ? q0 - b : q0;
                dl->AddRect(ImVec2(sx(k0), sy(q0)), ImVec2(sx(q1), sy(q1)), col, 0.0f, 0, 1.5f);
            }
        }
        (void)vk1;
    }

    // SparseK layers: the cells of the map where any query selected a key (cyan; opacity grows with
    // the share of the cell's keys a query selects, so a few picked keys stand out from a broad
    // fractional tail; outlined where cells are wide enough, filled where they are a few pixels), and
    // the chosen query's own selected keys as ticks on its row (yellow).
    template <typename Sx, typename Sy>
    static void drawSelections(ImDrawList* dl, const AnalysisResult& a, const LayerAnalysis& la, const UiState& ui, float vk0,
                               float vk1, float vq0, float vq1, Sx sx, Sy sy) {
        const SparseKSelectionStats& sel = la.selections;
        if (sel.countBins.empty() || sel.poolRows <= 0 || sel.poolCols <= 0) return;
        const auto H = static_cast<int64_t>(sel.heads());
        const double headsShown = ui.head < 0 ? static_cast<double>(H) : 1.0;
        const double rq = static_cast<double>(a.mapQ1 - a.mapQ0) / static_cast<double>(sel.poolRows);
        const double rk = static_cast<double>(a.mapK1 - a.mapK0) / static_cast<double>(sel.poolCols);
        int drawn = 0;
        for (int64_t r = 0; r < sel.poolRows && drawn < 40000; ++r) {
            const float q0 = static_cast<float>(a.mapQ0 + r * rq), q1 = static_cast<float>(a.mapQ0 + (r + 1) * rq);
            if (q1 < vq0 || q0 > vq1) continue;
            for (int64_t c = 0; c < sel.poolCols; ++c) {
                float v = 0;
                for (int64_t h = 0; h < H; ++h)
                    if (ui.head < 0 || ui.head == h) v += sel.pooled[static_cast<size_t>((h * sel.poolRows + r) * sel.poolCols + c)];
                if (v <= 0) continue;
                const float k0 = static_cast<float>(a.mapK0 + c * rk), k1 = static_cast<float>(a.mapK0 + (c + 1) * rk);
                if (k1 < vk0 || k0 > vk1) continue;
                const double share = std::min(1.0, static_cast<double>(v) / (headsShown * std::max(rk, 1.0)));
                const auto alpha = static_cast<int>(40 + 200 * std::sqrt(share));
                const ImVec2 p0(sx(k0), sy(q0)), p1(sx(k1), sy(q1));
                if (p1.x - p0.x >= 4.0f) dl->AddRect(p0, p1, IM_COL32(80, 230, 255, alpha), 0.0f, 0, 1.0f);
                else dl->AddRectFilled(p0, p1, IM_COL32(80, 230, 255, alpha / 2));
                ++drawn;
            }
        }
        const auto it = std::find(a.queryRows.begin(), a.queryRows.end(), ui.queryToken);
        if (ui.queryToken < 0 || it == a.queryRows.end()) return;
        const size_t row = static_cast<size_t>(it - a.queryRows.begin());
        const float y0 = sy(static_cast<float>(ui.queryToken) - 2.0f), y1 = sy(static_cast<float>(ui.queryToken) + 3.0f);
        for (int64_t h = 0; h < H; ++h) {
            if (ui.head >= 0 && ui.head != h) continue;
            for (int32_t key : sel.rowKeys[row * static_cast<size_t>(H) + static_cast<size_t>(h)]) {
                const float x = sx(static_cast<float>(key) + 0.5f);
                dl->AddLine(ImVec2(x, y0 - 4), ImVec2(x, y1 + 4), IM_COL32(255, 230, 60, 230), 2.0f);
            }
        }
    }

    void handleInput(UiState& ui, const AnalysisResult& a, const LayerAnalysis& la, bool hovered, ImVec2 c0, float side,
                     float T, float vk0, float vk1, float vq0, float vq1) {
        ImGuiIO& io = ImGui::GetIO();
        const float fx = (io.MousePos.x - c0.x) / side, fy = (io.MousePos.y - c0.y) / side;  // 0..1 in the view
        const float mk = vk0 + fx * (vk1 - vk0), mq = vq0 + fy * (vq1 - vq0);                  // token coordinates
        if (hovered && io.MouseWheel != 0.0f) {
            const float zoom = io.MouseWheel > 0 ? 0.8f : 1.25f;
            const float minSpan = std::min(1.0f, 8.0f / T);
            auto rezoom = [&](float& lo, float& hi, float at) {
                float span = std::clamp((hi - lo) * zoom, minSpan, 1.0f);
                float center = lo + at * (hi - lo);
                lo = std::clamp(center - at * span, 0.0f, 1.0f - span);
                hi = lo + span;
            };
            rezoom(ui.mapX0, ui.mapX1, fx);
            rezoom(ui.mapY0, ui.mapY1, fy);
        }
        if (ImGui::IsItemActive() && ImGui::IsMouseDragging(ImGuiMouseButton_Left, 3.0f)) {
            auto pan = [&](float& lo, float& hi, float delta) {
                float span = hi - lo;
                lo = std::clamp(lo - delta / side * span, 0.0f, 1.0f - span);
                hi = lo + span;
            };
            pan(ui.mapX0, ui.mapX1, io.MouseDelta.x);
            pan(ui.mapY0, ui.mapY1, io.MouseDelta.y);
        } else if (ImGui::IsItemDeactivated() && hovered && !m_wasDragged) {
            ui.queryToken = std::clamp(static_cast<int64_t>(mq), int64_t{0}, a.numTokens - 1);
        }
        m_wasDragged = ImGui::IsItemActive() && (m_wasDragged || ImGui::IsMouseDragging(ImGuiMouseButton_Left, 3.0f));
        if (hovered && ImGui::IsMouseDoubleClicked(ImGuiMouseButton_Left)) resetZoom(ui);
        if (hovered) {
            const int row = static_cast<int>((mq - static_cast<float>(a.mapQ0)) / static_cast<float>(a.mapQ1 - a.mapQ0) *
                                             static_cast<float>(la.poolRows));
            const int col = static_cast<int>((mk - static_cast<float>(a.mapK0)) / static_cast<float>(a.mapK1 - a.mapK0) *
                                             static_cast<float>(la.poolCols));
            ImGui::BeginTooltip();
            ImGui::Text("query %.0f, key %.0f (distance %.0f)", std::floor(mq), std::floor(mk), std::floor(mq) - std::floor(mk));
            if (row >= 0 && row < la.poolRows && col >= 0 && col < la.poolCols) {
                const float v = m_values[static_cast<size_t>(row) * static_cast<size_t>(la.poolCols) + static_cast<size_t>(col)];
                const double rq = static_cast<double>(a.mapQ1 - a.mapQ0) / static_cast<double>(la.poolRows);
                const double rk = static_cast<double>(a.mapK1 - a.mapK0) / static_cast<double>(la.poolCols);
                ImGui::Text("cell: queries %.0f..%.0f x keys %.0f..%.0f", a.mapQ0 + row * rq, a.mapQ0 + (row + 1) * rq,
                            a.mapK0 + col * rk, a.mapK0 + (col + 1) * rk);
                ImGui::Text("attention mass %.3g%s", v, rq <= 1.0 && rk <= 1.0 ? " (exact cell)" : " (pooled)");
                const SparseKSelectionStats& sel = la.selections;
                if (!sel.countBins.empty() && sel.poolRows == la.poolRows && sel.poolCols == la.poolCols) {
                    const auto H = static_cast<int64_t>(sel.heads());
                    float s = 0;
                    for (int64_t h = 0; h < H; ++h)
                        s += sel.pooled[static_cast<size_t>((h * la.poolRows + row) * la.poolCols + col)] / static_cast<float>(H);
                    ImGui::Text("SparseK: %.3g keys of this cell selected per query (head mean)", s);
                }
            }
            ImGui::TextDisabled("wheel: zoom, drag: pan, click: select query, double-click: reset");
            ImGui::EndTooltip();
        }
    }

    GlTexture m_texture;
    std::vector<float> m_values;
    float m_max = 0;
    std::shared_ptr<const AnalysisResult> m_source;  // what the texture shows (kept alive: compared by identity)
    int m_layer = -1, m_head = -2;
    bool m_log = false;
    bool m_wasDragged = false;
};

}  // namespace

std::unique_ptr<View> makeAttentionMapView() { return std::make_unique<AttentionMapView>(); }

}  // namespace spanscope
