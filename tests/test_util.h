// Test helpers: temporary folders without std::filesystem's remove_all/copy. The torch wheel's
// libtorch.so exports its own std::filesystem (from another GCC) and those two crashed in
// binaries linked with it; POSIX calls are unambiguous.
#pragma once

#include <dirent.h>
#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <string>

namespace spanscope::test {

inline void removeTree(const std::string& path) {
    nftw(path.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
         FTW_DEPTH | FTW_PHYS);
}

// Copies the regular files of one folder (not recursive) into a new folder.
inline void copyFolder(const std::string& from, const std::string& to) {
    if (mkdir(to.c_str(), 0755) != 0) throw std::runtime_error("mkdir " + to);
    DIR* d = opendir(from.c_str());
    if (!d) throw std::runtime_error("opendir " + from);
    while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        std::ifstream in(from + "/" + name, std::ios::binary);
        std::ofstream out(to + "/" + name, std::ios::binary);
        out << in.rdbuf();
    }
    closedir(d);
}

class TempDir {
public:
    explicit TempDir(const std::string& prefix = "spanscope-test") {
        std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        m_path = tmpl;
    }
    ~TempDir() { removeTree(m_path); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return m_path; }
    std::string operator/(const std::string& name) const { return m_path + "/" + name; }

private:
    std::string m_path;
};

}  // namespace spanscope::test
