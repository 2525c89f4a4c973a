// Whole-file reads and crash-safe whole-file writes.
//
// A write goes to `<path>.tmp.<pid>` in the same directory, is fsync'ed, and is then renamed over
// `<path>`: a reader sees either the old file or the new one, never half of one, even if the
// process dies or the disk fills midway. On any failure the temporary file is removed and an
// InputError naming `<path>` is thrown.
//
// Thread safety: the functions are safe to call concurrently for different paths. Two writers of
// the same path in one process share the temporary name and must not run at the same time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace spanscope {

// Streams one file into place. Construct (creates the temporary file), write() any number of
// times, then commit() (fsync + rename). Destroying it without commit() removes the temporary
// file and leaves `path` untouched.
class AtomicFileWriter {
public:
    explicit AtomicFileWriter(std::string path);
    ~AtomicFileWriter();
    AtomicFileWriter(const AtomicFileWriter&) = delete;
    AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

    const std::string& path() const { return m_path; }
    void write(const void* data, size_t nbytes);
    void commit();

private:
    void discard() noexcept;
    [[noreturn]] void failWith(const std::string& what, int err);

    std::string m_path;
    std::string m_tempPath;
    int m_fd = -1;
    bool m_committed = false;
};

// Writes `bytes` to `path` through `path.tmp.<pid>` + fsync + rename; throws InputError naming the
// path on any failure and removes the temp file.
void writeFileAtomic(const std::string& path, std::string_view bytes);

// Checks, before any long work, that `path` could be written: creates and removes its temporary
// file. Throws the same InputError a failed write would.
void checkWritable(const std::string& path);

// Reads a whole file. Throws InputError "<path>: cannot open (reason)", "<path>: is a directory",
// or "<path>: file is N bytes, more than the limit M" when it is larger than maxBytes.
std::string readFile(const std::string& path, size_t maxBytes = SIZE_MAX);

}  // namespace spanscope
