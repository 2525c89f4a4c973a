// Cairo helpers of the figures; see figure_canvas.h.
#include "engine/figure_canvas.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>

#include "engine/atomic_file.h"
#include "engine/errors.h"

namespace spanscope::fig {

void setFont(cairo_t* cr, double size, bool bold) {
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

void setColor(cairo_t* cr, const Rgb& c, double alpha) { cairo_set_source_rgba(cr, c.r, c.g, c.b, alpha); }

double textWidth(cairo_t* cr, const std::string& s) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s.c_str(), &e);
    return e.x_advance;
}

void drawText(cairo_t* cr, double x, double y, const std::string& s, double ax, double ay, bool rotate) {
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    const double capHeight = 0.73 * fe.ascent / 0.93;  // DejaVu: digits and capitals reach ~0.73 em
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (rotate) cairo_rotate(cr, -M_PI / 2);
    cairo_move_to(cr, -ax * textWidth(cr, s), (1.0 - ay) * capHeight);
    cairo_show_text(cr, s.c_str());
    cairo_restore(cr);
}

std::string fitText(cairo_t* cr, const std::string& s, double maxWidth) {
    if (textWidth(cr, s) <= maxWidth) return s;
    std::string t = s;
    while (!t.empty()) {
        t.pop_back();
        while (!t.empty() && (static_cast<unsigned char>(t.back()) & 0xC0) == 0x80) t.pop_back();  // whole UTF-8 chars
        if (textWidth(cr, t + "…") <= maxWidth) break;
    }
    return t + "…";
}

double drawTitle(cairo_t* cr, const FigureTitle& t, double width) {
    const double margin = 16;
    setColor(cr, kInk);
    setFont(cr, kFontTitle, true);
    drawText(cr, margin, 14, fitText(cr, t.what, width - 2 * margin), 0, 0);
    setColor(cr, kMuted);
    setFont(cr, kFontSubtitle);
    // The pattern always shows in full; long model and document names give way, half each.
    const std::string sep = "   ·   ";
    const double fixed = textWidth(cr, "model " + sep + "document " + sep + "pattern " + t.pattern);
    const double room = std::max(40.0, (width - 2 * margin - fixed) / 2);
    std::string model = t.model, document = t.document;
    if (textWidth(cr, model) + textWidth(cr, document) > 2 * room) {
        const double mw = textWidth(cr, model), dw = textWidth(cr, document);
        if (mw < room) document = fitText(cr, document, 2 * room - mw);
        else if (dw < room) model = fitText(cr, model, 2 * room - dw);
        else model = fitText(cr, model, room), document = fitText(cr, document, room);
    }
    const std::string sub = "model " + model + sep + "document " + document + sep + "pattern " + t.pattern;
    drawText(cr, margin, 34, fitText(cr, sub, width - 2 * margin), 0, 0);
    return 52;
}

std::string tickLabel(double v, double step) {
    char buf[32];
    const double a = std::fabs(v);
    if (a < 1e-9 * std::max(step, 1e-300)) return "0";
    if (a >= 1e6 && step >= 1e4) std::snprintf(buf, sizeof buf, "%.4gM", v / 1e6);
    else if (a >= 1e4 && step >= 100) std::snprintf(buf, sizeof buf, "%.4gk", v / 1e3);
    else {
        // As many decimals as the step needs, so neighbouring ticks never read the same.
        const int decimals = std::clamp(static_cast<int>(-std::floor(std::log10(step) + 1e-9)), 0, 8);
        std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    }
    return buf;
}

Axis niceAxis(double lo, double hi, int targetTicks, const std::string& label) {
    if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12 * std::max(1.0, std::fabs(hi))) {
        const double pad = std::max(1e-3, std::fabs(hi) * 0.05);
        lo -= pad;
        hi += pad;
    }
    const double raw = (hi - lo) / std::max(1, targetTicks);
    const double p = std::pow(10.0, std::floor(std::log10(raw)));
    const double m = raw / p;
    const double step = (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
    Axis a;
    a.lo = std::floor(lo / step + 1e-9) * step;
    a.hi = std::ceil(hi / step - 1e-9) * step;
    a.label = label;
    for (int i = 0;; ++i) {
        const double v = a.lo + i * step;
        if (v > a.hi + step * 1e-6) break;
        a.ticks.push_back(v);
        a.tickLabels.push_back(tickLabel(v, step));
    }
    return a;
}

Axis exactAxis(double lo, double hi, int targetTicks, const std::string& label) {
    Axis a = niceAxis(lo, hi, targetTicks, label), out;
    out.lo = lo;
    out.hi = hi;
    out.label = label;
    for (size_t i = 0; i < a.ticks.size(); ++i)
        if (a.ticks[i] >= lo - 1e-9 && a.ticks[i] <= hi + 1e-9) {
            out.ticks.push_back(a.ticks[i]);
            out.tickLabels.push_back(a.tickLabels[i]);
        }
    return out;
}

void drawAxes(cairo_t* cr, const Rect& plot, const Axis& x, const Axis& y) {
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, plot.x, plot.y, plot.w, plot.h);
    cairo_fill(cr);
    cairo_set_line_width(cr, 0.5);
    setColor(cr, kGrid);
    for (double t : x.ticks) {
        const double px = x.map(t, plot.x, plot.right());
        cairo_move_to(cr, px, plot.y);
        cairo_line_to(cr, px, plot.bottom());
    }
    for (double t : y.ticks) {
        const double py = y.downward ? y.map(t, plot.y, plot.bottom()) : y.map(t, plot.bottom(), plot.y);
        cairo_move_to(cr, plot.x, py);
        cairo_line_to(cr, plot.right(), py);
    }
    cairo_stroke(cr);

    setColor(cr, kInk);
    cairo_set_line_width(cr, 0.8);
    cairo_rectangle(cr, plot.x, plot.y, plot.w, plot.h);
    cairo_stroke(cr);
    setFont(cr, kFontTick);
    double widest = 0;
    for (size_t i = 0; i < x.ticks.size(); ++i) {
        const double px = x.map(x.ticks[i], plot.x, plot.right());
        cairo_move_to(cr, px, plot.bottom());
        cairo_line_to(cr, px, plot.bottom() + 4);
        cairo_stroke(cr);
        drawText(cr, px, plot.bottom() + 7, x.tickLabels[i], 0.5, 0);
    }
    for (size_t i = 0; i < y.ticks.size(); ++i) {
        const double py = y.downward ? y.map(y.ticks[i], plot.y, plot.bottom()) : y.map(y.ticks[i], plot.bottom(), plot.y);
        cairo_move_to(cr, plot.x - 4, py);
        cairo_line_to(cr, plot.x, py);
        cairo_stroke(cr);
        drawText(cr, plot.x - 7, py, y.tickLabels[i], 1, 0.5);
        widest = std::max(widest, textWidth(cr, y.tickLabels[i]));
    }
    setFont(cr, kFontLabel);
    drawText(cr, plot.x + plot.w / 2, plot.bottom() + 24, x.label, 0.5, 0);
    drawText(cr, plot.x - widest - 14, plot.y + plot.h / 2, y.label, 0.5, 1, true);
}

double legendWidth(cairo_t* cr, const std::vector<LegendEntry>& entries) {
    setFont(cr, kFontTick);
    double w = 0;
    for (const auto& e : entries) w = std::max(w, textWidth(cr, e.label));
    return w + 38;
}

void drawLegend(cairo_t* cr, double x, double y, const std::vector<LegendEntry>& entries) {
    const double row = 14, w = legendWidth(cr, entries), h = row * static_cast<double>(entries.size()) + 8;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, x, y, w, h);
    cairo_fill_preserve(cr);
    setColor(cr, kGrid);
    cairo_set_line_width(cr, 0.8);
    cairo_stroke(cr);
    setFont(cr, kFontTick);
    for (size_t i = 0; i < entries.size(); ++i) {
        const double cy = y + 4 + row * (static_cast<double>(i) + 0.5);
        setColor(cr, entries[i].color);
        if (entries[i].ring) {
            cairo_set_line_width(cr, 1.2);
            cairo_new_path(cr);
            cairo_arc(cr, x + 17, cy, 5, 0, 2 * M_PI);
            cairo_stroke(cr);
        } else {
            cairo_set_line_width(cr, 1.8);
            const double dash[] = {4, 2.5};
            cairo_set_dash(cr, dash, entries[i].dashed ? 2 : 0, 0);
            cairo_move_to(cr, x + 6, cy);
            cairo_line_to(cr, x + 28, cy);
            cairo_stroke(cr);
            cairo_set_dash(cr, nullptr, 0, 0);
        }
        setColor(cr, kInk);
        drawText(cr, x + 33, cy, entries[i].label, 0, 0.5);
    }
}

namespace {

Rgb interpolate(const Rgb* anchors, int n, double t) {
    if (!(t >= 0)) t = 0;  // NaN too
    t = std::min(t, 1.0) * (n - 1);
    const int i = std::min(static_cast<int>(t), n - 2);
    const double f = t - i;
    const Rgb &a = anchors[i], &b = anchors[i + 1];
    return {a.r + (b.r - a.r) * f, a.g + (b.g - a.g) * f, a.b + (b.b - a.b) * f};
}

}  // namespace

Rgb seriesColor(int i, int n) {
    // Ten hand-picked colours that stay apart in print; beyond ten, a hue ramp.
    static const Rgb kPalette[] = {{0.16, 0.35, 0.66}, {0.89, 0.45, 0.10}, {0.20, 0.58, 0.30}, {0.80, 0.18, 0.22},
                                   {0.52, 0.34, 0.70}, {0.55, 0.35, 0.24}, {0.86, 0.40, 0.65}, {0.45, 0.45, 0.45},
                                   {0.66, 0.66, 0.12}, {0.10, 0.66, 0.72}};
    if (n <= 10) return kPalette[std::clamp(i, 0, 9)];
    static const Rgb kRamp[] = {{0.20, 0.16, 0.55}, {0.13, 0.45, 0.70}, {0.15, 0.62, 0.45},
                                {0.70, 0.66, 0.12}, {0.90, 0.40, 0.10}, {0.72, 0.10, 0.20}};
    return interpolate(kRamp, 6, n > 1 ? static_cast<double>(i) / (n - 1) : 0);
}

Rgb heatColor(double t) {
    static const Rgb kAnchors[] = {{0.07, 0.04, 0.17}, {0.36, 0.09, 0.43}, {0.71, 0.19, 0.35},
                                   {0.93, 0.45, 0.18}, {0.99, 0.76, 0.27}, {0.99, 0.98, 0.78}};
    return interpolate(kAnchors, 6, t);
}

Rgb divergingColor(double t) {
    if (!(t == t)) t = 0;
    t = std::clamp(t, -1.0, 1.0);
    static const Rgb kBlue{0.13, 0.40, 0.75}, kRed{0.78, 0.13, 0.15};
    const Rgb& end = t < 0 ? kBlue : kRed;
    const double a = std::fabs(t);
    return {1 + (end.r - 1) * a, 1 + (end.g - 1) * a, 1 + (end.b - 1) * a};
}

Rgb readableOn(const Rgb& fill) {
    return 0.2126 * fill.r + 0.7152 * fill.g + 0.0722 * fill.b > 0.5 ? Rgb{0, 0, 0} : Rgb{1, 1, 1};
}

namespace {

// Cairo stream callback into an AtomicFileWriter; keeps the first exception for the caller.
struct Sink {
    AtomicFileWriter* writer;
    std::exception_ptr error;
};

cairo_status_t writeToSink(void* closure, const unsigned char* data, unsigned int length) {
    auto* sink = static_cast<Sink*>(closure);
    if (sink->error) return CAIRO_STATUS_WRITE_ERROR;
    try {
        sink->writer->write(data, length);
    } catch (...) {
        sink->error = std::current_exception();
        return CAIRO_STATUS_WRITE_ERROR;
    }
    return CAIRO_STATUS_SUCCESS;
}

void finish(AtomicFileWriter& w, Sink& sink, cairo_status_t status) {
    if (sink.error) std::rethrow_exception(sink.error);
    if (status != CAIRO_STATUS_SUCCESS)
        throw InputError(w.path() + ": cannot draw (" + cairo_status_to_string(status) + ")");
    w.commit();
}

void paint(cairo_surface_t* s, double scale, const std::function<void(cairo_t*)>& draw) {
    cairo_t* cr = cairo_create(s);
    cairo_scale(cr, scale, scale);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    draw(cr);
    cairo_destroy(cr);
}

}  // namespace

void writeDrawing(const std::string& base, double width, double height, const std::function<void(cairo_t*)>& draw) {
    {
        AtomicFileWriter w(base + ".png");
        Sink sink{&w, nullptr};
        cairo_surface_t* s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, static_cast<int>(std::ceil(width * kPngScale)),
                                                        static_cast<int>(std::ceil(height * kPngScale)));
        paint(s, kPngScale, draw);
        cairo_status_t st = cairo_surface_status(s);
        if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_write_to_png_stream(s, writeToSink, &sink);
        cairo_surface_destroy(s);
        finish(w, sink, st);
    }
    {
        AtomicFileWriter w(base + ".svg");
        Sink sink{&w, nullptr};
        cairo_surface_t* s = cairo_svg_surface_create_for_stream(writeToSink, &sink, width, height);
        paint(s, 1.0, draw);
        cairo_surface_finish(s);
        const cairo_status_t st = cairo_surface_status(s);
        cairo_surface_destroy(s);
        finish(w, sink, st);
    }
    {
        AtomicFileWriter w(base + ".pdf");
        Sink sink{&w, nullptr};
        cairo_surface_t* s = cairo_pdf_surface_create_for_stream(writeToSink, &sink, width, height);
        cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "spanscope");
        paint(s, 1.0, draw);
        cairo_surface_finish(s);
        const cairo_status_t st = cairo_surface_status(s);
        cairo_surface_destroy(s);
        finish(w, sink, st);
    }
}

}  // namespace spanscope::fig
