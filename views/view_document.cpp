// Document view: the whole document as wrapped text, every token a tinted span (loss, loss minus
// the all-full baseline, the attention the selected query pays, or the mass each query sends
// beyond the span). Text is measured once per document and font, wrapped once per width into a
// line index, and only the visible lines are drawn.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "engine/analysis_rows.h"
#include "engine/utf8.h"
#include "views/colormap.h"
#include "views/view.h"
#include "views/plot_util.h"
#include "views/views_list.h"

namespace spanscope {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int kTabSpaces = 4;
constexpr float kLinePadding = 3.0f;
constexpr float kMinWrapWidth = 60.0f;
const char* const kTintNames[] = {"Loss", "Loss minus all-full", "Attention of the query", "Mass beyond span",
                                   "SparseK selections"};
constexpr ImU32 kQueryOutline = IM_COL32(255, 255, 255, 255);
constexpr ImU32 kHoverOutline = IM_COL32(255, 200, 60, 255);

ImU32 readableTextOn(ImU32 fill) {
    const ImVec4 c = ImGui::ColorConvertU32ToFloat4(fill);
    return 0.2126f * c.x + 0.7152f * c.y + 0.0722f * c.z > 0.5f ? IM_COL32(0, 0, 0, 255) : IM_COL32(255, 255, 255, 255);
}

void appendEscaped(std::string& out, unsigned char byte) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02X", byte);
    out += buf;
}

class DocumentView final : public View {
public:
    const char* name() const override { return "Document"; }
    void defaultRect(float& x, float& y, float& w, float& h) const override {
        x = 0.25f; y = 0.03f; w = 0.45f; h = 0.62f;
    }
    void drawContent(ViewContext& ctx) override;

private:
    // A run of one token's display text with no line break in it.
    struct Atom {
        int32_t token;
        uint32_t textBegin, textEnd;  // into m_display
        float width;
        bool endsLine;                // a '\n' of the token follows
    };
    struct Line {
        uint32_t firstAtom, endAtom;
    };
    struct Tint {
        std::vector<float> values;  // (T), NaN: no tint
        float lo = 0, hi = 1;
        bool diverging = false;
        bool logScale = false;
        std::string caption;        // what the colours mean, or why there are none
    };

    void measure(const std::shared_ptr<const DocumentInfo>& doc);
    void wrap(float width);
    void updateTint(const ViewContext& ctx);
    void drawHeader(ViewContext& ctx, bool& scrollToQuery);
    void drawLegend() const;
    void drawText(ViewContext& ctx, bool scrollToQuery);
    void drawTooltip(const ViewContext& ctx, int64_t token) const;
    ImU32 tintColor(float value) const;
    size_t lineOfToken(int64_t token) const;

    // Measured once per document and font.
    std::shared_ptr<const DocumentInfo> m_doc;
    const ImFont* m_font = nullptr;
    float m_fontSize = 0;
    std::string m_display;
    std::vector<Atom> m_atoms;
    // Wrapped once per width.
    float m_wrapKey = -1;
    float m_wrapWidth = 0;
    std::vector<Line> m_lines;
    std::vector<float> m_atomX;
    // Tint values, per analysis, baseline and selection.
    bool m_tintValid = false;
    DocumentTint m_tintKind = DocumentTint::Loss;
    std::shared_ptr<const AnalysisResult> m_tintAnalysis, m_tintBaseline;
    std::shared_ptr<const DocumentInfo> m_tintDoc;
    int m_tintLayer = 0, m_tintHead = -1;
    int64_t m_tintQuery = -1;
    bool m_tintBusy = false;
    Tint m_tint;
};

void DocumentView::measure(const std::shared_ptr<const DocumentInfo>& doc) {
    m_doc = doc;
    m_font = ImGui::GetFont();
    m_fontSize = ImGui::GetFontSize();
    m_display.clear();
    m_atoms.clear();
    m_wrapKey = -1;
    const std::string& text = doc->text;
    m_display.reserve(text.size() + text.size() / 8);
    m_atoms.reserve(doc->offsets.size() + doc->offsets.size() / 8);
    const float spaceWidth = ImGui::CalcTextSize(" ").x;
    size_t shownUntil = 0;  // bytes already shown by a character that began in an earlier token
    for (size_t t = 0; t < doc->offsets.size(); ++t) {
        const size_t begin = doc->offsets[t].first;
        const size_t end = std::min<size_t>(doc->offsets[t].second, text.size());
        size_t atomStart = m_display.size();
        bool emitted = false;
        auto closeAtom = [&](bool endsLine) {
            float w = ImGui::CalcTextSize(m_display.data() + atomStart, m_display.data() + m_display.size()).x;
            if (endsLine) w += spaceWidth;            // room to show (and hover) the line break
            else if (w <= 0) w = 0.5f * spaceWidth;   // a token of continuation bytes only
            m_atoms.push_back({static_cast<int32_t>(t), static_cast<uint32_t>(atomStart),
                               static_cast<uint32_t>(m_display.size()), w, endsLine});
            atomStart = m_display.size();
            emitted = true;
        };
        for (size_t i = std::max(begin, shownUntil); i < end;) {
            const auto c = static_cast<unsigned char>(text[i]);
            if (c == '\n') {
                closeAtom(true);
            } else if (c == '\t') {
                m_display.append(kTabSpaces, ' ');
            } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
                // CRLF: the '\n' breaks the line
            } else if (c < 0x20 || c == 0x7f) {
                appendEscaped(m_display, c);
            } else if (c < 0x80) {
                m_display += static_cast<char>(c);
            } else if (auto ch = decodeUtf8At(text, i)) {
                // A character split across tokens is shown whole in the token where it begins.
                m_display.append(text, i, ch->length);
                i += ch->length;
                shownUntil = i;
                continue;
            } else {
                appendEscaped(m_display, c);
            }
            ++i;
        }
        if (m_display.size() > atomStart || !emitted) closeAtom(false);
    }
}

void DocumentView::wrap(float width) {
    m_wrapWidth = std::max(width, kMinWrapWidth);
    m_lines.clear();
    m_atomX.assign(m_atoms.size(), 0.0f);
    uint32_t first = 0;
    float x = 0;
    for (uint32_t i = 0; i < m_atoms.size(); ++i) {
        const Atom& a = m_atoms[i];
        if (x > 0 && x + a.width > m_wrapWidth) {
            m_lines.push_back({first, i});
            first = i;
            x = 0;
        }
        m_atomX[i] = x;
        x += a.width;
        if (a.endsLine) {
            m_lines.push_back({first, i + 1});
            first = i + 1;
            x = 0;
        }
    }
    if (first < m_atoms.size() || m_lines.empty()) m_lines.push_back({first, static_cast<uint32_t>(m_atoms.size())});
}

size_t DocumentView::lineOfToken(int64_t token) const {
    auto it = std::upper_bound(m_lines.begin(), m_lines.end(), token, [&](int64_t t, const Line& line) {
        return line.firstAtom < m_atoms.size() && t < m_atoms[line.firstAtom].token;
    });
    return it == m_lines.begin() ? 0 : static_cast<size_t>(it - m_lines.begin() - 1);
}

void DocumentView::updateTint(const ViewContext& ctx) {
    const UiState& ui = ctx.ui;
    const Snapshot& snap = ctx.snap;
    if (m_tintValid && m_tintKind == ui.tint && m_tintAnalysis == snap.analysis && m_tintBaseline == snap.baseline &&
        m_tintDoc == snap.document && m_tintLayer == ui.layer && m_tintHead == ui.head &&
        m_tintQuery == ui.queryToken && m_tintBusy == snap.busy)
        return;
    m_tintValid = true;
    m_tintKind = ui.tint;
    m_tintAnalysis = snap.analysis;
    m_tintBaseline = snap.baseline;
    m_tintDoc = snap.document;
    m_tintLayer = ui.layer;
    m_tintHead = ui.head;
    m_tintQuery = ui.queryToken;
    m_tintBusy = snap.busy;
    m_tint = Tint{};

    const int64_t T = static_cast<int64_t>(snap.document->tokens.size());
    const AnalysisResult* a = snap.analysis.get();
    if (!a || a->numTokens != T) {
        m_tint.caption = snap.busy ? "analysing..." : "no analysis of this document yet";
        return;
    }
    const int layer = std::clamp(ui.layer, 0, std::max(0, static_cast<int>(a->layers.size()) - 1));
    char buf[160];
    std::vector<float>& values = m_tint.values;
    switch (ui.tint) {
        case DocumentTint::Loss: {
            values.resize(static_cast<size_t>(T));
            for (int64_t t = 0; t < T; ++t) values[static_cast<size_t>(t)] = lossOfToken(a->tokenLoss, t);
            m_tint.hi = std::max(percentile(a->tokenLoss, 0.99), 1e-3f);
            m_tint.caption = "loss (nats)";
            break;
        }
        case DocumentTint::DeltaLoss: {
            const AnalysisResult* base = snap.baseline.get();
            if (!base || base->tokenLoss.size() != a->tokenLoss.size()) {
                m_tint.caption = snap.busy ? "computing the all-full baseline..." : "no all-full baseline yet";
                return;
            }
            values.assign(static_cast<size_t>(T), kNaN);
            std::vector<float> magnitude(a->tokenLoss.size());
            for (size_t i = 0; i < a->tokenLoss.size(); ++i) {
                values[i + 1] = a->tokenLoss[i] - base->tokenLoss[i];
                magnitude[i] = std::fabs(values[i + 1]);
            }
            m_tint.hi = std::max(percentile(std::move(magnitude), 0.99), 1e-3f);
            m_tint.lo = -m_tint.hi;
            m_tint.diverging = true;
            m_tint.caption = "loss minus all-full (nats)";
            break;
        }
        case DocumentTint::Attention: {
            if (ui.queryToken < 0) {
                m_tint.caption = "click a token to choose the query";
                return;
            }
            const AttentionRow row = findAttentionRow(*a, ui.queryToken, layer);
            if (!row.data) {
                std::snprintf(buf, sizeof buf, "attention of token %lld %s", static_cast<long long>(ui.queryToken),
                              snap.busy ? "is being computed..." : "is not in this analysis");
                m_tint.caption = buf;
                return;
            }
            values.assign(static_cast<size_t>(T), kNaN);
            float strongest = 0;
            for (int64_t k = 0; k <= std::min(ui.queryToken, T - 1); ++k) {
                const float w = row.weight(ui.head, k);
                if (w > 0) {
                    values[static_cast<size_t>(k)] = std::log10(w);
                    strongest = std::max(strongest, w);
                }
            }
            m_tint.hi = strongest > 0 ? std::log10(strongest) : 0.0f;
            m_tint.lo = m_tint.hi - kAttentionTintDecades;
            m_tint.logScale = true;
            if (ui.head >= 0) std::snprintf(buf, sizeof buf, "attention of token %lld, layer %d, head %d",
                                            static_cast<long long>(ui.queryToken), layer, ui.head);
            else std::snprintf(buf, sizeof buf, "attention of token %lld, layer %d, head mean",
                               static_cast<long long>(ui.queryToken), layer);
            m_tint.caption = buf;
            break;
        }
        case DocumentTint::BeyondSpan: {
            if (a->layers.empty() || static_cast<int64_t>(a->layers[static_cast<size_t>(layer)].beyondPerToken.size()) != T) {
                m_tint.caption = "no attention statistics in this analysis";
                return;
            }
            values = a->layers[static_cast<size_t>(layer)].beyondPerToken;
            m_tint.hi = std::max(percentile(values, 0.99), 1e-6f);
            const bool none = std::all_of(values.begin(), values.end(), [](float v) { return v <= 0.0f; });
            std::snprintf(buf, sizeof buf, "mass at distance >= %lld, layer %d%s", static_cast<long long>(a->beyondSpan),
                          layer, none ? " (none in this layer)" : "");
            m_tint.caption = buf;
            break;
        }
        case DocumentTint::Selections: {
            SelectionTint st = selectionTint(*a, layer, ui.head, ui.queryToken);
            if (st.values.empty()) {
                m_tint.caption = st.caption;
                return;
            }
            values = std::move(st.values);
            m_tint.hi = st.hi;
            m_tint.caption = st.caption;
            break;
        }
    }
}

ImU32 DocumentView::tintColor(float value) const {
    if (m_tint.diverging) return divergingColor(value / m_tint.hi);
    return heatColor((value - m_tint.lo) / std::max(m_tint.hi - m_tint.lo, 1e-12f));
}

void DocumentView::drawLegend() const {
    const float height = ImGui::GetFrameHeight() * 0.6f, width = 140.0f;
    char buf[32];
    auto label = [&](float v) {
        if (m_tint.logScale) std::snprintf(buf, sizeof buf, "1e%.1f", v);
        else std::snprintf(buf, sizeof buf, "%.3g", v);
        return buf;
    };
    ImGui::TextUnformatted(label(m_tint.lo));
    ImGui::SameLine();
    const ImVec2 p = ImGui::GetCursorScreenPos();
    const float top = p.y + (ImGui::GetTextLineHeight() - height) * 0.5f;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    constexpr int kSteps = 48;
    for (int s = 0; s < kSteps; ++s) {
        const float t = (static_cast<float>(s) + 0.5f) / kSteps;
        const ImU32 c = m_tint.diverging ? divergingColor(2.0f * t - 1.0f) : heatColor(t);
        dl->AddRectFilled(ImVec2(p.x + width * static_cast<float>(s) / kSteps, top),
                          ImVec2(p.x + width * static_cast<float>(s + 1) / kSteps + 1.0f, top + height), c);
    }
    dl->AddRect(ImVec2(p.x, top), ImVec2(p.x + width, top + height), IM_COL32(160, 160, 160, 255));
    ImGui::Dummy(ImVec2(width, ImGui::GetTextLineHeight()));
    ImGui::SameLine();
    ImGui::TextUnformatted(label(m_tint.hi));
    ImGui::SameLine();
    ImGui::TextDisabled("%s", m_tint.caption.c_str());
}

void DocumentView::drawHeader(ViewContext& ctx, bool& scrollToQuery) {
    int tint = static_cast<int>(ctx.ui.tint);
    ImGui::SetNextItemWidth(ImGui::CalcTextSize(kTintNames[2]).x + ImGui::GetFrameHeight() * 2);
    if (ImGui::Combo("##tint", &tint, kTintNames, IM_ARRAYSIZE(kTintNames))) ctx.ui.tint = static_cast<DocumentTint>(tint);
    ImGui::SameLine();
    ImGui::BeginDisabled(ctx.ui.queryToken < 0);
    scrollToQuery = ImGui::Button("Go to query");
    ImGui::EndDisabled();
    ImGui::SameLine();
    if (ctx.ui.queryToken >= 0)
        ImGui::Text("query: token %lld '%s'", static_cast<long long>(ctx.ui.queryToken),
                    tokenLabel(*ctx.snap.document, ctx.ui.queryToken).c_str());
    else
        ImGui::TextDisabled("no query token (click one)");
    if (m_tint.values.empty()) ImGui::TextDisabled("%s", m_tint.caption.c_str());
    else drawLegend();
}

void DocumentView::drawTooltip(const ViewContext& ctx, int64_t token) const {
    const AnalysisResult* a = ctx.snap.analysis.get();
    if (a && a->numTokens != static_cast<int64_t>(ctx.snap.document->tokens.size())) a = nullptr;
    const int layer = a ? std::clamp(ctx.ui.layer, 0, std::max(0, static_cast<int>(a->layers.size()) - 1)) : 0;
    ImGui::BeginTooltip();
    ImGui::Text("token %lld", static_cast<long long>(token));
    ImGui::SameLine();
    ImGui::TextUnformatted(("'" + tokenLabel(*ctx.snap.document, token) + "'").c_str());
    if (a) {
        const float loss = lossOfToken(a->tokenLoss, token);
        if (std::isfinite(loss)) ImGui::Text("loss            %.3f nats", loss);
        else ImGui::TextDisabled("loss            - (first token)");
        if (ctx.snap.baseline && std::isfinite(loss)) {
            const float base = lossOfToken(ctx.snap.baseline->tokenLoss, token);
            if (std::isfinite(base)) ImGui::Text("minus all-full  %+.3f nats", loss - base);
        }
        const AttentionRow row = findAttentionRow(*a, ctx.ui.queryToken, layer);
        const float w = row.weight(ctx.ui.head, token);
        if (std::isfinite(w))
            ImGui::Text("attention       %.3g from token %lld (layer %d)", w, static_cast<long long>(ctx.ui.queryToken),
                        layer);
        if (!a->layers.empty()) {
            const auto& beyond = a->layers[static_cast<size_t>(layer)].beyondPerToken;
            if (token < static_cast<int64_t>(beyond.size()))
                ImGui::Text("beyond span     %.3f of its attention (layer %d)", beyond[static_cast<size_t>(token)], layer);
        }
    }
    ImGui::TextDisabled("click: make it the query");
    ImGui::EndTooltip();
}

void DocumentView::drawText(ViewContext& ctx, bool scrollToQuery) {
    ImGui::BeginChild("##text", ImVec2(0, 0), false, ImGuiWindowFlags_AlwaysVerticalScrollbar);
    const float widthKey = std::floor(ImGui::GetContentRegionAvail().x);
    if (widthKey != m_wrapKey) {
        m_wrapKey = widthKey;
        wrap(widthKey);
    }
    const float lineHeight = ImGui::GetTextLineHeight() + kLinePadding;
    if (scrollToQuery && ctx.ui.queryToken >= 0)
        ImGui::SetScrollY(std::max(0.0f, static_cast<float>(lineOfToken(ctx.ui.queryToken)) * lineHeight -
                                             0.4f * ImGui::GetWindowHeight()));

    ImDrawList* dl = ImGui::GetWindowDrawList();
    const bool hovered = ImGui::IsWindowHovered();
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    const ImU32 plainText = ImGui::GetColorU32(ImGuiCol_Text);
    const std::vector<float>& values = m_tint.values;
    int64_t hoveredToken = -1;

    ImGui::PushStyleVar(ImGuiStyleVar_ItemSpacing, ImVec2(ImGui::GetStyle().ItemSpacing.x, 0.0f));
    ImGuiListClipper clipper;
    clipper.Begin(static_cast<int>(m_lines.size()), lineHeight);
    int64_t firstVisible = -1, lastVisible = -1;  // published for File > Export (the document figure)
    while (clipper.Step()) {
        for (int li = clipper.DisplayStart; li < clipper.DisplayEnd; ++li) {
            const ImVec2 origin = ImGui::GetCursorScreenPos();
            const Line& line = m_lines[static_cast<size_t>(li)];
            if (line.firstAtom < line.endAtom && ImGui::IsRectVisible(origin, ImVec2(origin.x + m_wrapWidth, origin.y + lineHeight))) {
                const int64_t a0 = m_atoms[line.firstAtom].token, a1 = m_atoms[line.endAtom - 1].token;
                firstVisible = firstVisible < 0 ? a0 : std::min(firstVisible, a0);
                lastVisible = std::max(lastVisible, a1);
            }
            const bool mouseOnLine = hovered && mouse.y >= origin.y && mouse.y < origin.y + lineHeight;
            for (uint32_t i = line.firstAtom; i < line.endAtom; ++i) {
                const Atom& atom = m_atoms[i];
                const ImVec2 p0(origin.x + m_atomX[i], origin.y);
                const ImVec2 p1(p0.x + atom.width, origin.y + lineHeight - 1.0f);
                const float v = static_cast<size_t>(atom.token) < values.size() ? values[static_cast<size_t>(atom.token)]
                                                                                 : kNaN;
                ImU32 textColor = plainText;
                if (std::isfinite(v)) {
                    const ImU32 fill = tintColor(v);
                    dl->AddRectFilled(p0, p1, fill);
                    textColor = readableTextOn(fill);
                }
                if (atom.token == ctx.ui.queryToken)
                    dl->AddRect(ImVec2(p0.x - 1, p0.y - 1), ImVec2(p1.x + 1, p1.y + 1), kQueryOutline, 0.0f, 0, 2.0f);
                else if (atom.token == ctx.ui.hoverToken)
                    dl->AddRect(p0, p1, kHoverOutline);
                dl->AddText(ImVec2(p0.x, p0.y + 0.5f * kLinePadding), textColor, m_display.data() + atom.textBegin,
                            m_display.data() + atom.textEnd);
                if (mouseOnLine && mouse.x >= p0.x && mouse.x < p1.x) hoveredToken = atom.token;
            }
            ImGui::Dummy(ImVec2(m_wrapWidth, lineHeight));
        }
    }
    clipper.End();
    ImGui::PopStyleVar();
    ctx.ui.documentFirstVisible = firstVisible;
    ctx.ui.documentLastVisible = lastVisible;

    if (hovered) {
        ctx.ui.hoverToken = hoveredToken;
        if (hoveredToken >= 0) {
            drawTooltip(ctx, hoveredToken);
            if (ImGui::IsMouseClicked(ImGuiMouseButton_Left)) ctx.ui.queryToken = hoveredToken;
        }
    }
    ImGui::EndChild();
}

void DocumentView::drawContent(ViewContext& ctx) {
    const auto& doc = ctx.snap.document;
    if (doc != m_doc || ImGui::GetFont() != m_font || ImGui::GetFontSize() != m_fontSize) measure(doc);
    updateTint(ctx);
    bool scrollToQuery = false;
    drawHeader(ctx, scrollToQuery);
    drawText(ctx, scrollToQuery);
}

}  // namespace

std::unique_ptr<View> makeDocumentView() { return std::make_unique<DocumentView>(); }

}  // namespace spanscope
