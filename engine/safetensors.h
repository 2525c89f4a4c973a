// safetensors checkpoints: a strict reader (memory-mapped), an atomic writer, and sharded
// checkpoints described by model.safetensors.index.json.
//
// File layout (https://github.com/huggingface/safetensors): an 8-byte little-endian u64 N, then N
// bytes of UTF-8 JSON mapping tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} plus
// an optional "__metadata__" string -> string object, then the data section. Offsets are relative
// to the start of the data section; tensors are row-major, little-endian, and must cover the data
// section exactly (no overlap, no hole, no trailing bytes).
//
// Every problem with a file throws spanscope::InputError with one line that starts with the path
// and says what is wrong. The reader never reads outside the file whatever the header claims.
//
// Thread safety: a SafetensorsFile / SafetensorsShards is immutable after open(); any number of
// threads may read it at once. The mapping is read-only and private; if another process truncates
// the file while it is mapped, touching the lost pages raises SIGBUS (an OS limit of mmap).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace spanscope {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };

size_t dtypeSize(DType dtype);                         // bytes per element
const char* dtypeName(DType dtype);                    // "F32", "BF16", "BOOL", as in the spec
std::optional<DType> parseDType(std::string_view name);  // exact spec spelling; nullopt otherwise

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;  // empty for a scalar
    uint64_t begin = 0, end = 0;  // byte range inside the data section
    int64_t numel() const;        // product of shape; 1 for a scalar
};

// Read-only view of one .safetensors file, memory-mapped (PROT_READ). Movable, not copyable.
class SafetensorsFile {
public:
    // Validates the whole header and the coverage of the data section; throws InputError.
    static SafetensorsFile open(const std::string& path);

    SafetensorsFile(SafetensorsFile&& other) noexcept;
    SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;
    ~SafetensorsFile();

    const std::string& path() const { return m_path; }
    const std::vector<TensorInfo>& tensors() const { return m_tensors; }  // sorted by begin offset
    const TensorInfo* find(std::string_view name) const;                  // nullptr when absent
    const std::map<std::string, std::string>& metadata() const { return m_metadata; }  // "__metadata__"

    // The tensor's end - begin bytes inside the map; `info` must come from this file. The pointer
    // has no particular alignment: memcpy out before reading typed values.
    const uint8_t* data(const TensorInfo& info) const;

private:
    SafetensorsFile() = default;
    void release() noexcept;

    std::string m_path;
    const uint8_t* m_map = nullptr;
    size_t m_mapSize = 0;
    size_t m_dataStart = 0;  // 8 + header length
    std::vector<TensorInfo> m_tensors;
    std::map<std::string, size_t, std::less<>> m_byName;  // name -> index into m_tensors
    std::map<std::string, std::string> m_metadata;
};

struct TensorToWrite {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const void* data = nullptr;  // nbytes of row-major little-endian elements
    size_t nbytes = 0;
};

// Writes the tensors in the given order through a temporary file in the same directory + fsync +
// rename: an interrupted write never leaves a half file. The header is padded with spaces so the
// data section starts 8-byte aligned. Throws InputError (naming the path) if the directory is
// missing or unwritable, a name is empty, "__metadata__" or repeated, nbytes mismatches the shape,
// or the disk fills.
void writeSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// A checkpoint that may be split over several files. open() accepts
//   - a directory holding model.safetensors.index.json (preferred) or model.safetensors,
//   - a path to an index file ({"weight_map": {tensor name: shard file name}}), or
//   - a path to a single .safetensors file.
// Every tensor of the weight map must exist in the shard it names; tensors that a shard holds but
// the weight map does not list are not served. Movable, not copyable.
class SafetensorsShards {
public:
    static SafetensorsShards open(const std::string& dirOrFile);

    // The tensor and, through `file` when non-null, the shard holding it; nullptr when absent.
    const TensorInfo* find(std::string_view name, const SafetensorsFile** file = nullptr) const;
    std::vector<std::string> names() const;  // sorted
    const std::vector<SafetensorsFile>& files() const { return m_files; }

private:
    struct Location {
        size_t file;
        const TensorInfo* tensor;  // points into m_files[file].tensors(); stable across moves
    };
    std::vector<SafetensorsFile> m_files;
    std::map<std::string, Location, std::less<>> m_byName;
};

}  // namespace spanscope
