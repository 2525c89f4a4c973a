// Human-readable numbers for summaries and panels: 1.2k, 3.4M; 1.5 MiB.
#pragma once

#include <string>

namespace spanscope {

std::string formatCount(double v, int decimals = 1);  // SI suffixes k, M, G, T, P
std::string formatBytes(double v);                    // binary units B, KiB, MiB, GiB, TiB

}  // namespace spanscope
