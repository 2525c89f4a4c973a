// Whole-file reads and temp + fsync + rename writes; see atomic_file.h.
#include "engine/atomic_file.h"

#include "engine/errors.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace spanscope {
namespace {

std::string directoryOf(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

// Closes a descriptor on scope exit; used by readFile.
class FdCloser {
public:
    explicit FdCloser(int fd) : m_fd(fd) {}
    ~FdCloser() { ::close(m_fd); }
    FdCloser(const FdCloser&) = delete;
    FdCloser& operator=(const FdCloser&) = delete;

private:
    int m_fd;
};

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::string path)
    : m_path(std::move(path)), m_tempPath(m_path + ".tmp." + std::to_string(::getpid())) {
    m_fd = ::open(m_tempPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (m_fd < 0) {
        const int err = errno;
        if (err == ENOENT) {
            throw InputError(m_path + ": cannot write (directory '" + directoryOf(m_path) +
                             "' does not exist)");
        }
        throw InputError(m_path + ": cannot create temporary file '" + m_tempPath + "' (" +
                         std::strerror(err) + ")");
    }
}

AtomicFileWriter::~AtomicFileWriter() {
    if (!m_committed) discard();
}

void AtomicFileWriter::discard() noexcept {
    if (m_fd >= 0) {
        ::close(m_fd);
        m_fd = -1;
    }
    ::unlink(m_tempPath.c_str());
}

void AtomicFileWriter::failWith(const std::string& what, int err) {
    discard();
    m_committed = true;  // nothing left to clean up in the destructor
    const char* reason = err == ENOSPC ? "disk full" : std::strerror(err);
    throw InputError(m_path + ": " + what + " (" + reason + ")");
}

void AtomicFileWriter::write(const void* data, size_t nbytes) {
    if (m_fd < 0) throw InputError(m_path + ": write after the file was closed");
    const char* cursor = static_cast<const char*>(data);
    while (nbytes > 0) {
        // Linux writes at most ~2 GiB per call; loop on short writes.
        const ssize_t wrote = ::write(m_fd, cursor, nbytes);
        if (wrote < 0) {
            if (errno == EINTR) continue;
            failWith("cannot write", errno);
        }
        if (wrote == 0) failWith("cannot write", EIO);
        cursor += wrote;
        nbytes -= static_cast<size_t>(wrote);
    }
}

void AtomicFileWriter::commit() {
    if (m_fd < 0) throw InputError(m_path + ": commit after the file was closed");
    if (::fsync(m_fd) != 0) failWith("cannot flush to disk", errno);
    const int fd = m_fd;
    m_fd = -1;
    if (::close(fd) != 0) failWith("cannot close", errno);
    if (::rename(m_tempPath.c_str(), m_path.c_str()) != 0) {
        const int err = errno;
        if (err == EISDIR) failWith("cannot replace", err);
        failWith("cannot rename '" + m_tempPath + "' into place", err);
    }
    m_committed = true;
    // Make the rename itself durable. Best effort: some filesystems refuse fsync on directories,
    // and the new file is already complete and visible either way.
    const int dirFd = ::open(directoryOf(m_path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirFd >= 0) {
        (void)::fsync(dirFd);
        ::close(dirFd);
    }
}

void writeFileAtomic(const std::string& path, std::string_view bytes) {
    AtomicFileWriter writer(path);
    writer.write(bytes.data(), bytes.size());
    writer.commit();
}

std::string readFile(const std::string& path, size_t maxBytes) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw InputError(path + ": cannot open (" + std::strerror(errno) + ")");
    FdCloser closer(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw InputError(path + ": cannot stat (" + std::strerror(errno) + ")");
    if (S_ISDIR(st.st_mode)) throw InputError(path + ": is a directory");
    const auto tooLarge = [&](uint64_t size) {
        return InputError(path + ": file is " + std::to_string(size) + " bytes, more than the limit " +
                          std::to_string(maxBytes));
    };
    if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > maxBytes) throw tooLarge(st.st_size);

    // Read to end of file rather than trusting st_size: pipes and /proc files report 0.
    std::string bytes;
    if (S_ISREG(st.st_mode)) bytes.reserve(static_cast<size_t>(st.st_size));
    char buffer[64 * 1024];
    for (;;) {
        const ssize_t got = ::read(fd, buffer, sizeof buffer);
        if (got < 0) {
            if (errno == EINTR) continue;
            throw InputError(path + ": cannot read (" + std::strerror(errno) + ")");
        }
        if (got == 0) break;
        if (bytes.size() + static_cast<size_t>(got) > maxBytes) throw tooLarge(bytes.size() + got);
        bytes.append(buffer, static_cast<size_t>(got));
    }
    return bytes;
}

void checkWritable(const std::string& path) {
    AtomicFileWriter probe(path);  // destroyed uncommitted: the temporary file is removed
}

}  // namespace spanscope
