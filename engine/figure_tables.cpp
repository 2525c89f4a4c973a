// Attention map (image + colour bar + pattern overlay) and cost table figures; see figures.h.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/figure_canvas.h"
#include "engine/figures.h"

namespace spanscope {

using namespace fig;

namespace {

constexpr double kDecades = 4;  // colour range of the map: the top 4 decades of mass

std::string humanCount(double v) {
    const char* units[] = {"", "k", "M", "G", "T", "P"};
    int u = 0;
    while (std::fabs(v) >= 1000.0 && u < 5) v /= 1000.0, ++u;
    char buf[32];
    std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f%s", v, units[u]);
    return buf;
}

std::string humanBytes(double v) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024.0 && u < 4) v /= 1024.0, ++u;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

// The map as an image, one pixel per bin; zero (not attended) cells light grey.
cairo_surface_t* mapImage(const AttentionMapFigure& f, double logMin, double logMax) {
    cairo_surface_t* img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, static_cast<int>(f.cols), static_cast<int>(f.rows));
    cairo_surface_flush(img);
    unsigned char* data = cairo_image_surface_get_data(img);
    const int stride = cairo_image_surface_get_stride(img);
    for (int64_t r = 0; r < f.rows; ++r) {
        auto* row = reinterpret_cast<uint32_t*>(data + r * stride);
        for (int64_t c = 0; c < f.cols; ++c) {
            const float v = f.values[static_cast<size_t>(r * f.cols + c)];
            Rgb col{0.93, 0.93, 0.94};
            if (v > 0) col = heatColor((std::log10(static_cast<double>(v)) - logMin) / (logMax - logMin));
            auto byte = [](double x) { return static_cast<uint32_t>(std::clamp(x, 0.0, 1.0) * 255.0 + 0.5); };
            row[c] = (byte(col.r) << 16) | (byte(col.g) << 8) | byte(col.b);
        }
    }
    cairo_surface_mark_dirty(img);
    return img;
}

}  // namespace

void writeFigure(const std::string& base, const AttentionMapFigure& f) {
    float vmax = 0, vminPositive = INFINITY;
    for (float v : f.values)
        if (v > 0) vmax = std::max(vmax, v), vminPositive = std::min(vminPositive, v);
    const double logMax = vmax > 0 ? std::log10(static_cast<double>(vmax)) : 0.0;
    const double logMin = vmax > 0 ? std::max(std::log10(static_cast<double>(vminPositive)), logMax - kDecades) : -1.0;
    const double logSpan = std::max(logMax - logMin, 1e-6);
    const double width = 640, side = 440, height = 52 + 12 + side + 76;
    writeDrawing(base, width, height, [&](cairo_t* cr) {
        const double top = drawTitle(cr, f.title, width);
        const Rect plot{80, top + 12, side, side};
        const Axis x = exactAxis(static_cast<double>(f.k0), static_cast<double>(f.k1), 6, "key position (token)");
        Axis y = exactAxis(static_cast<double>(f.q0), static_cast<double>(f.q1), 6, "query position (token)");
        y.downward = true;
        drawAxes(cr, plot, x, y);

        cairo_surface_t* img = mapImage(f, logMin, logMin + logSpan);
        cairo_save(cr);
        cairo_rectangle(cr, plot.x, plot.y, plot.w, plot.h);
        cairo_clip(cr);
        cairo_translate(cr, plot.x, plot.y);
        cairo_scale(cr, plot.w / static_cast<double>(f.cols), plot.h / static_cast<double>(f.rows));
        cairo_set_source_surface(cr, img, 0, 0);
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
        cairo_paint(cr);
        cairo_restore(cr);
        cairo_surface_destroy(img);

        // The pattern: the first key each query may attend (the diagonal is the causal edge).
        if (f.spec.kind != AttentionKind::Full) {
            cairo_save(cr);
            cairo_rectangle(cr, plot.x, plot.y, plot.w, plot.h);
            cairo_clip(cr);
            auto px = [&](double k) { return x.map(k, plot.x, plot.right()); };
            auto py = [&](double q) { return y.map(q, plot.y, plot.bottom()); };
            const int64_t step = std::max<int64_t>(1, (f.q1 - f.q0) / 800);
            for (int64_t q = f.q0; q < f.q1; q += step) {
                const double k = static_cast<double>(f.spec.firstKey(q));
                if (q == f.q0) cairo_move_to(cr, px(k), py(static_cast<double>(q)));
                else cairo_line_to(cr, px(k), py(static_cast<double>(q)));
                cairo_line_to(cr, px(k), py(static_cast<double>(std::min(q + step, f.q1))));
            }
            cairo_set_source_rgb(cr, 0.25, 0.85, 0.95);
            cairo_set_line_width(cr, 1.2);
            const double dash[] = {4, 3};
            cairo_set_dash(cr, dash, 2, 0);
            cairo_stroke(cr);
            cairo_restore(cr);
        }

        // Colour bar: one band per decade fraction, ticks at whole decades.
        const Rect bar{plot.right() + 22, plot.y, 14, plot.h};
        const int steps = 128;
        for (int s = 0; s < steps; ++s) {
            const Rgb c = heatColor((s + 0.5) / steps);
            cairo_set_source_rgb(cr, c.r, c.g, c.b);
            cairo_rectangle(cr, bar.x, bar.bottom() - bar.h * (s + 1) / steps, bar.w, bar.h / steps + 0.5);
            cairo_fill(cr);
        }
        setColor(cr, kInk);
        cairo_set_line_width(cr, 0.8);
        cairo_rectangle(cr, bar.x, bar.y, bar.w, bar.h);
        cairo_stroke(cr);
        setFont(cr, kFontTick);
        double widest = 0;
        for (double d = std::ceil(logMin - 1e-9); d <= logMin + logSpan + 1e-9; d += 1) {
            const double yy = bar.bottom() - (d - logMin) / logSpan * bar.h;
            cairo_move_to(cr, bar.right(), yy);
            cairo_line_to(cr, bar.right() + 4, yy);
            cairo_stroke(cr);
            char buf[16];
            std::snprintf(buf, sizeof buf, "1e%d", static_cast<int>(d));
            drawText(cr, bar.right() + 6, yy, buf, 0, 0.5);
            widest = std::max(widest, textWidth(cr, buf));
        }
        setFont(cr, kFontLabel);
        drawText(cr, bar.right() + widest + 22, bar.y + bar.h / 2, "mean attention mass per key bin (log scale)", 0.5, 0,
                 true);
        setFont(cr, kFontTick);
        setColor(cr, kMuted);
        char caption[200];
        std::snprintf(caption, sizeof caption, "%lld x %lld bins; grey: not attended%s",
                      static_cast<long long>(f.rows), static_cast<long long>(f.cols),
                      f.spec.kind != AttentionKind::Full ? "; dashed: first key the layer's pattern allows" : "");
        drawText(cr, plot.x, plot.bottom() + 44, caption, 0, 0);
    });
}

void writeFigure(const std::string& base, const CostTableFigure& f) {
    const double rowH = 17, width = 720;
    const size_t L = f.cost.layers.size();
    const double height = 52 + 34 + rowH * static_cast<double>(L + 2) + 30;
    writeDrawing(base, width, height, [&](cairo_t* cr) {
        double y = drawTitle(cr, f.title, width) + 14;
        // Column right edges (numbers) or left edges (text).
        struct Col { const char* name; double x; double align; };
        const Col cols[] = {{"layer", 64, 1}, {"attention", 84, 0}, {"attended pairs", 300, 1}, {"FLOP", 385, 1},
                            {"bytes moved", 480, 1}, {"KV cache", 580, 1}, {"share of full", 690, 1}};
        setColor(cr, kInk);
        setFont(cr, kFontLabel, true);
        for (const auto& c : cols) drawText(cr, c.x, y, c.name, c.align, 0.5);
        y += rowH * 0.7;
        cairo_set_line_width(cr, 0.8);
        cairo_move_to(cr, 20, y);
        cairo_line_to(cr, width - 20, y);
        cairo_stroke(cr);
        y += rowH * 0.8;
        auto row = [&](const std::vector<std::string>& cells, bool bold, bool shade) {
            if (shade) {
                cairo_set_source_rgb(cr, 0.95, 0.95, 0.97);
                cairo_rectangle(cr, 20, y - rowH / 2, width - 40, rowH);
                cairo_fill(cr);
            }
            setColor(cr, kInk);
            setFont(cr, kFontLabel, bold);
            for (size_t i = 0; i < cells.size(); ++i) drawText(cr, cols[i].x, y, cells[i], cols[i].align, 0.5);
            y += rowH;
        };
        char share[32];
        for (size_t l = 0; l < L; ++l) {
            const LayerCost& c = f.cost.layers[l];
            std::snprintf(share, sizeof share, "%.1f%%", 100.0 * c.shareOfFull);
            row({std::to_string(l), f.pattern.layers[l].text(), humanCount(static_cast<double>(c.pairs)),
                 humanCount(c.flops), humanBytes(c.bytes), humanBytes(c.kvCacheBytes), share},
                false, l % 2 == 1);
        }
        y -= rowH / 2;
        setColor(cr, kInk);
        cairo_move_to(cr, 20, y);
        cairo_line_to(cr, width - 20, y);
        cairo_stroke(cr);
        y += rowH / 2 + 2;
        std::snprintf(share, sizeof share, "C = %.1f%%", 100.0 * f.cost.relativeCost);
        row({"total", "", humanCount(static_cast<double>(f.cost.pairs)), humanCount(f.cost.flops), humanBytes(f.cost.bytes),
             humanBytes(f.cost.kvCacheBytes), share},
            true, false);
        char note[256];
        std::snprintf(note, sizeof note,
                      "n = %lld tokens, H = %lld heads, d = %lld, bf16.  All-full attention: %s FLOP, KV cache %s.  "
                      "C = attended pairs / all-full pairs.",
                      static_cast<long long>(f.tokens), static_cast<long long>(f.heads), static_cast<long long>(f.headDim),
                      humanCount(f.cost.fullFlops).c_str(), humanBytes(f.cost.fullKvCacheBytes).c_str());
        setColor(cr, kMuted);
        setFont(cr, kFontTick);
        drawText(cr, 20, y + 8, fitText(cr, note, width - 40), 0, 0);
    });
}

}  // namespace spanscope
