// The Document view's figure (a window of tinted text with a colour bar) and the Layers view's
// figure (the layer stack table with the boundary); see figures.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "engine/errors.h"
#include "engine/figure_canvas.h"
#include "engine/figures.h"

namespace spanscope {

using namespace fig;

namespace {

constexpr double kTextWidth = 720, kTextMargin = 24;
constexpr double kTextFont = 9, kTextLine = 13.5;
constexpr Rgb kQueryOutline{0.05, 0.70, 0.90};

// Advances must not depend on the surface: the layout is measured once and drawn on three.
void unhintedMetrics(cairo_t* cr) {
    cairo_font_options_t* o = cairo_font_options_create();
    cairo_font_options_set_hint_metrics(o, CAIRO_HINT_METRICS_OFF);
    cairo_font_options_set_hint_style(o, CAIRO_HINT_STYLE_NONE);
    cairo_set_font_options(cr, o);
    cairo_font_options_destroy(o);
}

// A run of one token's display text with no line break in it, placed on the page.
struct Atom {
    size_t token;
    std::string text;
    double x = 0, width = 0;
    int line = 0;
};

// Wraps the tokens into lines of `width` points (as the Document view wraps them).
std::vector<Atom> layoutText(cairo_t* cr, const DocumentTextFigure& f, double width, int& lines) {
    setFont(cr, kTextFont);
    const double space = textWidth(cr, " ");
    std::vector<Atom> atoms;
    double x = 0;
    int line = 0;
    auto place = [&](size_t token, std::string text, bool endsLine) {
        double w = textWidth(cr, text);
        if (endsLine) w += space;              // the line break gets a cell of its own colour
        else if (w <= 0) w = 0.5 * space;      // a token of continuation bytes only
        if (x > 0 && x + w > width) x = 0, ++line;
        if (w > width) text = fitText(cr, text, width), w = width;
        atoms.push_back({token, std::move(text), x, w, line});
        x += w;
        if (endsLine) x = 0, ++line;
    };
    for (size_t t = 0; t < f.display.size(); ++t) {
        const std::string& d = f.display[t];
        size_t start = 0;
        bool placed = false;
        for (size_t nl = d.find('\n'); nl != std::string::npos; nl = d.find('\n', start)) {
            place(t, d.substr(start, nl - start), true);
            start = nl + 1;
            placed = true;
        }
        if (start < d.size() || !placed) place(t, d.substr(start), false);
    }
    lines = line + (x > 0 || atoms.empty() ? 1 : 0);
    return atoms;
}

std::string scaleLabel(const DocumentTextFigure& f, double v, double step) {
    if (!f.logScale) return tickLabel(v, step);
    char buf[24];
    std::snprintf(buf, sizeof buf, "1e%g", v);
    return buf;
}

Rgb tintColor(const DocumentTextFigure& f, double v) {
    if (f.diverging) return divergingColor(v / std::max<double>(f.hi, 1e-12));
    return heatColor((v - f.lo) / std::max<double>(f.hi - f.lo, 1e-12));
}

// A horizontal colour bar at (x, y) with ticks below and the caption to its right.
void drawColorBar(cairo_t* cr, const DocumentTextFigure& f, double x, double y) {
    const double w = 240, h = 10;
    const int steps = 96;
    for (int s = 0; s < steps; ++s) {
        const double t = (s + 0.5) / steps;
        setColor(cr, tintColor(f, f.lo + t * (f.hi - f.lo)));
        cairo_rectangle(cr, x + w * s / steps, y, w / steps + 0.4, h);
        cairo_fill(cr);
    }
    setColor(cr, kInk);
    cairo_set_line_width(cr, 0.8);
    cairo_rectangle(cr, x, y, w, h);
    cairo_stroke(cr);
    const Axis a = exactAxis(f.lo, f.hi, 5, "");
    setFont(cr, kFontTick);
    const double step = a.ticks.size() > 1 ? a.ticks[1] - a.ticks[0] : std::max<double>(f.hi - f.lo, 1e-9);
    for (double t : a.ticks) {
        const double px = a.map(t, x, x + w);
        cairo_move_to(cr, px, y + h);
        cairo_line_to(cr, px, y + h + 3);
        cairo_stroke(cr);
        drawText(cr, px, y + h + 5, scaleLabel(f, t, step), 0.5, 0);
    }
    setFont(cr, kFontLabel);
    drawText(cr, x + w + 12, y + h / 2, fitText(cr, f.caption, kTextWidth - kTextMargin - (x + w + 12)), 0, 0.5);
}

}  // namespace

const char* tokenTintName(TokenTint t) {
    switch (t) {
        case TokenTint::Loss: return "loss";
        case TokenTint::DeltaLoss: return "delta";
        case TokenTint::Attention: return "attention";
        case TokenTint::BeyondSpan: return "beyond";
        case TokenTint::Selections: return "selections";
    }
    return "loss";
}

TokenTint parseTokenTint(const std::string& s) {
    for (TokenTint t : {TokenTint::Loss, TokenTint::DeltaLoss, TokenTint::Attention, TokenTint::BeyondSpan, TokenTint::Selections})
        if (s == tokenTintName(t)) return t;
    throw InputError("tint must be loss, delta, attention, beyond or selections, not '" + s + "'");
}

void writeFigure(const std::string& base, const DocumentTextFigure& f) {
    const double wrap = kTextWidth - 2 * kTextMargin;
    int lines = 0;
    std::vector<Atom> atoms;
    {
        cairo_surface_t* s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
        cairo_t* cr = cairo_create(s);
        unhintedMetrics(cr);
        atoms = layoutText(cr, f, wrap, lines);
        cairo_destroy(cr);
        cairo_surface_destroy(s);
    }
    const double textTop = 52 + 44, height = textTop + lines * kTextLine + 40;
    writeDrawing(base, kTextWidth, height, [&](cairo_t* cr) {
        unhintedMetrics(cr);
        drawTitle(cr, f.title, kTextWidth);
        if (!f.values.empty()) drawColorBar(cr, f, kTextMargin, 60);
        else {
            setColor(cr, kMuted);
            setFont(cr, kFontLabel);
            drawText(cr, kTextMargin, 65, "untinted: " + f.caption, 0, 0.5);
        }
        setFont(cr, kTextFont);
        cairo_font_extents_t fe;
        cairo_font_extents(cr, &fe);
        const double baseline = 0.5 * (kTextLine + fe.ascent - fe.descent);
        for (const Atom& a : atoms) {
            const double x = kTextMargin + a.x, y = textTop + a.line * kTextLine;
            const float v = a.token < f.values.size() ? f.values[a.token] : NAN;
            Rgb ink = kInk;
            if (std::isfinite(v)) {
                const Rgb fill = tintColor(f, v);
                setColor(cr, fill);
                cairo_rectangle(cr, x, y, a.width + 0.3, kTextLine - 1);  // overlap hides hairline seams
                cairo_fill(cr);
                ink = readableOn(fill);
            }
            setColor(cr, ink);
            cairo_move_to(cr, x, y + baseline - 0.5);
            cairo_show_text(cr, a.text.c_str());
            cairo_new_path(cr);
        }
        // The query token on top of its neighbours' fills.
        for (const Atom& a : atoms)
            if (f.query >= 0 && f.first + static_cast<int64_t>(a.token) == f.query) {
                setColor(cr, kQueryOutline);
                cairo_set_line_width(cr, 1.6);
                cairo_rectangle(cr, kTextMargin + a.x - 0.8, textTop + a.line * kTextLine - 0.8, a.width + 1.6, kTextLine + 0.6);
                cairo_stroke(cr);
            }
        char note[240];
        const int64_t n = static_cast<int64_t>(f.ids.size());
        std::snprintf(note, sizeof note, "tokens %lld to %lld of %lld%s; untinted: no value%s",
                      static_cast<long long>(f.first), static_cast<long long>(f.first + n - 1),
                      static_cast<long long>(f.totalTokens), f.query >= 0 ? "; outlined: the query token" : "",
                      f.tint == TokenTint::Loss || f.tint == TokenTint::DeltaLoss ? " (the first token has no loss)" : "");
        setColor(cr, kMuted);
        setFont(cr, kFontTick);
        drawText(cr, kTextMargin, textTop + lines * kTextLine + 14, fitText(cr, note, wrap), 0, 0);
    });
}

namespace {

Rgb kindColor(AttentionKind k) {
    switch (k) {
        case AttentionKind::Full: return {0.86, 0.47, 0.24};
        case AttentionKind::Window: return {0.27, 0.60, 0.84};
        case AttentionKind::Block: return {0.38, 0.70, 0.38};
        case AttentionKind::SparseK: return {0.68, 0.42, 0.80};
    }
    return kMuted;
}

std::string compactCount(double v) {
    const char* units[] = {"", "k", "M", "G", "T"};
    int u = 0;
    while (std::fabs(v) >= 1000.0 && u < 4) v /= 1000.0, ++u;
    char buf[32];
    std::snprintf(buf, sizeof buf, u ? "%.1f%s" : "%.0f%s", v, units[u]);
    return buf;
}

}  // namespace

void writeFigure(const std::string& base, const LayerStackFigure& f) {
    const double rowH = 19, width = 720;
    const int L = static_cast<int>(f.layers.size());
    const double gap = 14;  // between the sparse and the full layers, for the boundary line
    const double height = 52 + 40 + rowH * L + gap + 48;
    constexpr Rgb kBoundary{0.93, 0.60, 0.10}, kSelected{0.86, 0.89, 0.97};
    writeDrawing(base, width, height, [&](cairo_t* cr) {
        double y = drawTitle(cr, f.title, width) + 16;
        struct Col { const char* name; double x, align; };
        const Col cols[] = {{"layer", 58, 1},        {"attention", 84, 0},       {"span", 226, 1},
                            {"attended pairs", 318, 1}, {"share of full", 408, 1}, {"mass beyond span", 496, 0.5},
                            {"mean distance", 640, 1}, {"entropy", 700, 1}};
        setColor(cr, kInk);
        setFont(cr, kFontLabel, true);
        for (const auto& c : cols) drawText(cr, c.x, y, c.name, c.align, 0.5);
        y += rowH * 0.6;
        cairo_set_line_width(cr, 0.8);
        cairo_move_to(cr, 20, y);
        cairo_line_to(cr, width - 20, y);
        cairo_stroke(cr);
        const double tableTop = y + 4;
        char buf[64];
        for (int l = L - 1; l >= 0; --l) {  // top layer first, as in the app
            const LayerRow& r = f.layers[static_cast<size_t>(l)];
            const double top = tableTop + rowH * (L - 1 - l) + (l < f.boundary ? gap : 0), mid = top + rowH / 2;
            if (l == f.selectedLayer) {
                setColor(cr, kSelected);
                cairo_rectangle(cr, 20, top, width - 40, rowH);
                cairo_fill(cr);
            }
            setColor(cr, kindColor(r.spec.kind));
            cairo_rectangle(cr, 68, top + 4, 6, rowH - 8);
            cairo_fill(cr);
            setColor(cr, kInk);
            setFont(cr, kFontLabel, l == f.selectedLayer);
            drawText(cr, cols[0].x, mid, std::to_string(l), 1, 0.5);
            drawText(cr, cols[1].x, mid, r.spec.text(), 0, 0.5);
            drawText(cr, cols[2].x, mid, r.spec.kind == AttentionKind::Full ? "–" : std::to_string(r.spec.span), 1, 0.5);
            drawText(cr, cols[3].x, mid, compactCount(static_cast<double>(r.pairs)), 1, 0.5);
            std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * r.shareOfFull);
            drawText(cr, cols[4].x, mid, buf, 1, 0.5);
            // Beyond-span mass: a bar (full width = all of the mass) beside the number.
            const double barX = 436, barW = 70;
            setColor(cr, kGrid);
            cairo_rectangle(cr, barX, top + 5, barW, rowH - 10);
            cairo_fill(cr);
            setColor(cr, seriesColor(0, 1), 0.75);
            cairo_rectangle(cr, barX, top + 5, barW * std::clamp(r.beyondMass, 0.0, 1.0), rowH - 10);
            cairo_fill(cr);
            setColor(cr, kInk);
            std::snprintf(buf, sizeof buf, "%.3f", r.beyondMass);
            drawText(cr, 556, mid, buf, 1, 0.5);
            std::snprintf(buf, sizeof buf, "%.1f", r.meanDistance);
            drawText(cr, cols[6].x, mid, buf, 1, 0.5);
            std::snprintf(buf, sizeof buf, "%.2f", r.entropy);
            drawText(cr, cols[7].x, mid, buf, 1, 0.5);
            setColor(cr, kGrid);
            cairo_set_line_width(cr, 0.5);
            cairo_move_to(cr, 20, top + rowH);
            cairo_line_to(cr, width - 20, top + rowH);
            cairo_stroke(cr);
        }
        // The boundary sits in the gap below the row of layer `boundary` (above every full layer).
        const double by = tableTop + rowH * (L - f.boundary) + gap / 2;
        setColor(cr, kBoundary);
        cairo_set_line_width(cr, 2.5);
        cairo_move_to(cr, 20, by);
        cairo_line_to(cr, width - 20, by);
        cairo_stroke(cr);
        setFont(cr, kFontTick, true);
        std::snprintf(buf, sizeof buf, "boundary l = %d: full below", f.boundary);
        const double tw = textWidth(cr, buf);
        setColor(cr, {1, 1, 1});
        cairo_rectangle(cr, width - 26 - tw, by - 6, tw + 8, 12);
        cairo_fill(cr);
        setColor(cr, kBoundary);
        drawText(cr, width - 22, by, buf, 1, 0.5);

        char note[256];
        std::string head = f.head < 0 ? "the head mean" : "head " + std::to_string(f.head);
        std::snprintf(note, sizeof note,
                      "Statistics of %s over n = %lld tokens; mass beyond span: at distance ≥ %lld.  C = %.1f%% of "
                      "all-full attention.%s",
                      head.c_str(), static_cast<long long>(f.tokens), static_cast<long long>(f.beyondSpan),
                      100.0 * f.relativeCost, f.selectedLayer >= 0 ? "  Shaded: the selected layer." : "");
        setColor(cr, kMuted);
        setFont(cr, kFontTick);
        drawText(cr, 20, tableTop + rowH * L + gap + 16, fitText(cr, note, width - 40), 0, 0);
    });
}

}  // namespace spanscope
