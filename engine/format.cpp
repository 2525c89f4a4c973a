#include "engine/format.h"

#include <cmath>
#include <cstdio>

namespace spanscope {

std::string formatCount(double v, int decimals) {
    const char* units[] = {"", "k", "M", "G", "T", "P"};
    int u = 0;
    while (std::fabs(v) >= 1000.0 && u < 5) {
        v /= 1000.0;
        ++u;
    }
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.*f%s", u ? decimals : 0, v, units[u]);
    return buf;
}

std::string formatBytes(double v) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

}  // namespace spanscope
