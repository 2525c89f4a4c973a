// Writes RGBA pixels as a PNG (Cairo) through a temporary file and rename.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spanscope {

// rgba: width x height x 4 bytes, top row first. Throws InputError naming the path on failure.
void writePngRgba(const std::string& path, const std::vector<uint8_t>& rgba, int width, int height);

}  // namespace spanscope
