// An RGBA texture owned by one view, uploaded on the UI thread (OpenGL 1.1 calls only).
#pragma once

#include <cstdint>
#include <vector>

namespace spanscope {

class GlTexture {
public:
    GlTexture() = default;
    ~GlTexture();
    GlTexture(const GlTexture&) = delete;
    GlTexture& operator=(const GlTexture&) = delete;

    // pixels: width x height packed ImGui colours (IM_COL32), row-major, top row first.
    void upload(const std::vector<uint32_t>& pixels, int width, int height);
    void* id() const;  // ImTextureID for ImGui::Image / AddImage; null before the first upload
    int width() const { return m_width; }
    int height() const { return m_height; }

private:
    unsigned int m_texture = 0;
    int m_width = 0, m_height = 0;
};

}  // namespace spanscope
