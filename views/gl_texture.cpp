#include "views/gl_texture.h"

#include <GL/gl.h>

#include <cstdint>

namespace spanscope {

GlTexture::~GlTexture() {
    if (m_texture) glDeleteTextures(1, &m_texture);
}

void GlTexture::upload(const std::vector<uint32_t>& pixels, int width, int height) {
    if (!m_texture) glGenTextures(1, &m_texture);
    glBindTexture(GL_TEXTURE_2D, m_texture);
    // Nearest filtering: every pooled cell stays a crisp square when magnified.
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
    // IM_COL32 packs R in the low byte: in memory that is R, G, B, A.
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, width, height, 0, GL_RGBA, GL_UNSIGNED_BYTE, pixels.data());
    m_width = width;
    m_height = height;
}

void* GlTexture::id() const { return reinterpret_cast<void*>(static_cast<uintptr_t>(m_texture)); }

}  // namespace spanscope
