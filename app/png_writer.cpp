#include "app/png_writer.h"

#include <cairo.h>
#include <unistd.h>

#include <cstdio>

#include "engine/errors.h"

namespace spanscope {

void writePngRgba(const std::string& path, const std::vector<uint8_t>& rgba, int width, int height) {
    cairo_surface_t* s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        throw InputError(path + ": cannot create a " + std::to_string(width) + "x" + std::to_string(height) + " image");
    }
    cairo_surface_flush(s);
    unsigned char* data = cairo_image_surface_get_data(s);
    const int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < height; ++y) {
        auto* row = reinterpret_cast<uint32_t*>(data + static_cast<ptrdiff_t>(y) * stride);
        const uint8_t* src = rgba.data() + static_cast<size_t>(y) * static_cast<size_t>(width) * 4;
        for (int x = 0; x < width; ++x, src += 4) {
            // Cairo wants premultiplied native-endian ARGB; screenshots are opaque.
            const uint32_t a = src[3];
            auto pre = [a](uint32_t c) { return (c * a + 127) / 255; };
            row[x] = (a << 24) | (pre(src[0]) << 16) | (pre(src[1]) << 8) | pre(src[2]);
        }
    }
    cairo_surface_mark_dirty(s);
    const std::string tmp = path + ".tmp." + std::to_string(getpid());
    cairo_status_t st = cairo_surface_write_to_png(s, tmp.c_str());
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS || std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw InputError(path + ": cannot write PNG (" + cairo_status_to_string(st) + ")");
    }
}

}  // namespace spanscope
