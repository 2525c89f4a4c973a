// safetensors reader, writer and shard index; see safetensors.h.
//
// [SECTION] dtypes
// [SECTION] messages and strict JSON parsing
// [SECTION] header validation
// [SECTION] SafetensorsFile
// [SECTION] writer
// [SECTION] SafetensorsShards
#include "engine/safetensors.h"

#include "engine/atomic_file.h"
#include "engine/errors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace spanscope {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;
constexpr size_t kMaxIndexBytes = 64ull * 1024 * 1024;
constexpr size_t kMaxNameInMessage = 96;

// [SECTION] dtypes

struct DTypeEntry {
    DType dtype;
    const char* name;
    size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::Bool, "BOOL", 1},
};

const DTypeEntry& entryOf(DType dtype) {
    for (const DTypeEntry& entry : kDTypes)
        if (entry.dtype == dtype) return entry;
    return kDTypes[0];  // unreachable for valid enum values
}

}  // namespace

size_t dtypeSize(DType dtype) { return entryOf(dtype).size; }
const char* dtypeName(DType dtype) { return entryOf(dtype).name; }

std::optional<DType> parseDType(std::string_view name) {
    for (const DTypeEntry& entry : kDTypes)
        if (name == entry.name) return entry.dtype;
    return std::nullopt;
}

int64_t TensorInfo::numel() const {
    uint64_t count = 1;  // unsigned: no undefined behaviour on hand-made shapes
    for (int64_t dim : shape) count *= static_cast<uint64_t>(dim);
    return static_cast<int64_t>(count);
}

namespace {

// [SECTION] messages and strict JSON parsing

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw InputError(path + ": " + what);
}

// Text from a file made safe for a one-line message: control bytes (and, when asked, non-ASCII
// bytes) become \xNN, and long text is cut to `maxBytes`.
std::string printable(std::string_view text, size_t maxBytes, bool escapeNonAscii) {
    static const char kHex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < text.size() && i < maxBytes; ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte < 0x20 || byte == 0x7f || (escapeNonAscii && byte >= 0x80)) {
            out += "\\x";
            out += kHex[byte >> 4];
            out += kHex[byte & 15];
        } else {
            out += static_cast<char>(byte);
        }
    }
    if (text.size() > maxBytes) out += "...";
    return out;
}

// A name from the file, quoted and printable.
std::string quoteName(std::string_view name) {
    return "'" + printable(name, kMaxNameInMessage, /*escapeNonAscii=*/false) + "'";
}

std::string shapeText(const std::vector<int64_t>& shape) {
    std::string out = "[";
    for (size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
    return out + "]";
}

std::string rangeText(uint64_t begin, uint64_t end) {
    return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// Bytes needed by `shape` x `dtype`; nullopt when that overflows 64 bits.
std::optional<uint64_t> byteCount(const std::vector<int64_t>& shape, DType dtype) {
    if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
    uint64_t bytes = dtypeSize(dtype);
    for (int64_t dim : shape)
        if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) return std::nullopt;
    return bytes;
}

// Parses JSON, rejecting a byte-order mark and duplicate keys in any object (nlohmann would
// silently keep the last one). `what` names the part in messages: "header" or "index".
json parseStrictJson(const std::string& path, const char* begin, const char* end, const char* what) {
    if (end - begin >= 3 && std::memcmp(begin, "\xEF\xBB\xBF", 3) == 0)
        fail(path, std::string(what) + " starts with a UTF-8 byte-order mark");
    // nlohmann treats a NUL byte as the end of input and would ignore whatever follows it; JSON
    // text never contains a raw NUL, so reject it here.
    if (const void* nul = std::memchr(begin, 0, static_cast<size_t>(end - begin))) {
        fail(path, std::string(what) + " contains a NUL byte at offset " +
                       std::to_string(static_cast<const char*>(nul) - begin));
    }
    std::vector<std::set<std::string>> openObjects;
    const json::parser_callback_t onEvent = [&](int, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start) {
            openObjects.emplace_back();
        } else if (event == json::parse_event_t::object_end) {
            openObjects.pop_back();
        } else if (event == json::parse_event_t::key && !openObjects.empty()) {
            const std::string& key = parsed.get_ref<const std::string&>();
            if (!openObjects.back().insert(key).second)
                fail(path, std::string(what) + " has duplicate key " + quoteName(key));
        }
        return true;
    };
    try {
        return json::parse(begin, end, onEvent, /*allow_exceptions=*/true);
    } catch (const json::exception& error) {
        std::string reason = error.what();  // "[json.exception.parse_error.101] parse error at ..."
        const size_t prefixEnd = reason.find("] ");
        if (prefixEnd != std::string::npos) reason.erase(0, prefixEnd + 2);
        fail(path, std::string(what) + " is not valid JSON (" + printable(reason, 240, true) + ")");
    }
}

// [SECTION] header validation

TensorInfo parseTensor(const std::string& path, const std::string& name, const json& entry,
                       uint64_t dataSize) {
    const std::string tensor = "tensor " + quoteName(name);
    if (!entry.is_object())
        fail(path, tensor + " is a " + entry.type_name() + ", expected an object");

    TensorInfo info;
    info.name = name;
    const auto dtype = entry.find("dtype");
    if (dtype == entry.end()) fail(path, tensor + " has no \"dtype\"");
    if (!dtype->is_string())
        fail(path, tensor + " \"dtype\" is a " + dtype->type_name() + ", expected a string");
    const std::optional<DType> parsed = parseDType(dtype->get_ref<const std::string&>());
    if (!parsed) fail(path, tensor + " has unknown dtype " + quoteName(dtype->get_ref<const std::string&>()));
    info.dtype = *parsed;

    const auto shape = entry.find("shape");
    if (shape == entry.end()) fail(path, tensor + " has no \"shape\"");
    if (!shape->is_array())
        fail(path, tensor + " \"shape\" is a " + shape->type_name() + ", expected an array");
    for (const json& dim : *shape) {
        if (dim.is_number_unsigned()) {
            if (dim.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
                fail(path, tensor + " shape has dimension " + dim.dump() + ", too large");
            info.shape.push_back(dim.get<int64_t>());
        } else if (dim.is_number_integer()) {
            fail(path, tensor + " shape has negative dimension " + dim.dump());
        } else {
            fail(path, tensor + " shape element " + dim.dump() + " is not an integer");
        }
    }

    const auto offsets = entry.find("data_offsets");
    if (offsets == entry.end()) fail(path, tensor + " has no \"data_offsets\"");
    if (!offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
        !(*offsets)[1].is_number_unsigned()) {
        std::string shown = offsets->dump();
        if (shown.size() > 80) shown = shown.substr(0, 80) + "...";
        fail(path, tensor + " data_offsets " + shown + " are not two non-negative integers");
    }
    info.begin = (*offsets)[0].get<uint64_t>();
    info.end = (*offsets)[1].get<uint64_t>();
    const std::string range = rangeText(info.begin, info.end);
    if (info.begin > info.end) fail(path, tensor + " data_offsets " + range + " begin after they end");

    const std::string layout = shapeText(info.shape) + " x " + dtypeName(info.dtype);
    const std::optional<uint64_t> bytes = byteCount(info.shape, info.dtype);
    if (!bytes) fail(path, tensor + " shape " + layout + " overflows 64-bit byte counts");
    if (info.end - info.begin != *bytes) {
        fail(path, tensor + " data_offsets " + range + " do not match shape " + layout + " (" +
                       std::to_string(*bytes) + " bytes)");
    }
    if (info.end > dataSize) {
        fail(path, tensor + " data_offsets " + range + " exceed the data section of " +
                       std::to_string(dataSize) + " bytes");
    }
    return info;
}

// Sorts by offset and checks that the tensors tile [0, dataSize) exactly. Zero-size tensors must
// sit at the running end like any other tensor (what the reference implementation accepts).
void checkCoverage(const std::string& path, std::vector<TensorInfo>& tensors, uint64_t dataSize) {
    std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
        if (a.begin != b.begin) return a.begin < b.begin;
        if (a.end != b.end) return a.end < b.end;
        return a.name < b.name;
    });
    uint64_t covered = 0;
    const TensorInfo* previous = nullptr;
    for (const TensorInfo& info : tensors) {
        if (info.begin < covered) {
            fail(path, "tensors " + quoteName(previous->name) + " " +
                           rangeText(previous->begin, previous->end) + " and " + quoteName(info.name) + " " +
                           rangeText(info.begin, info.end) + " overlap");
        }
        if (info.begin > covered) {
            const std::string where = previous
                                          ? "between " + quoteName(previous->name) + " and " + quoteName(info.name)
                                          : "before " + quoteName(info.name);
            fail(path, std::to_string(info.begin - covered) + "-byte hole in the data section " + where +
                           " (at offset " + std::to_string(covered) + ")");
        }
        covered = info.end;
        previous = &info;
    }
    if (covered != dataSize) {
        fail(path, std::to_string(dataSize - covered) + " trailing bytes after the last tensor (data section is " +
                       std::to_string(dataSize) + " bytes, tensors cover " + std::to_string(covered) + ")");
    }
}

}  // namespace

// [SECTION] SafetensorsFile

SafetensorsFile SafetensorsFile::open(const std::string& path) {
    SafetensorsFile file;
    file.m_path = path;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, std::string("cannot open (") + std::strerror(errno) + ")");
    struct stat st {};
    const int statResult = ::fstat(fd, &st);
    const int statErrno = errno;
    if (statResult != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        if (statResult != 0) fail(path, std::string("cannot stat (") + std::strerror(statErrno) + ")");
        fail(path, S_ISDIR(st.st_mode) ? "is a directory" : "is not a regular file");
    }
    const auto fileSize = static_cast<uint64_t>(st.st_size);
    if (fileSize < 8) {
        ::close(fd);
        if (fileSize == 0) fail(path, "file is empty");
        fail(path, "file is " + std::to_string(fileSize) + " bytes, too short for the 8-byte header length");
    }
    void* map = ::mmap(nullptr, fileSize, PROT_READ, MAP_PRIVATE, fd, 0);
    const int mapErrno = errno;
    ::close(fd);  // the mapping keeps the file alive
    if (map == MAP_FAILED) fail(path, std::string("cannot map (") + std::strerror(mapErrno) + ")");
    file.m_map = static_cast<const uint8_t*>(map);  // from here on, ~SafetensorsFile unmaps
    file.m_mapSize = fileSize;

    uint64_t headerSize = 0;
    for (int i = 7; i >= 0; --i) headerSize = (headerSize << 8) | file.m_map[i];
    if (headerSize == 0) fail(path, "header length is 0");
    if (headerSize > kMaxHeaderBytes) {
        fail(path, "header length " + std::to_string(headerSize) + " exceeds the limit of " +
                       std::to_string(kMaxHeaderBytes) + " bytes");
    }
    if (headerSize > fileSize - 8) {
        fail(path, "header length " + std::to_string(headerSize) + " exceeds file size " +
                       std::to_string(fileSize));
    }
    file.m_dataStart = 8 + headerSize;
    const uint64_t dataSize = fileSize - file.m_dataStart;

    const auto* headerBegin = reinterpret_cast<const char*>(file.m_map + 8);
    const json header = parseStrictJson(path, headerBegin, headerBegin + headerSize, "header");
    if (!header.is_object())
        fail(path, std::string("header is a JSON ") + header.type_name() + ", expected an object");

    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") {
            if (!entry.is_object())
                fail(path, std::string("__metadata__ is a ") + entry.type_name() + ", expected an object");
            for (const auto& [key, value] : entry.items()) {
                if (!value.is_string()) {
                    fail(path, "__metadata__ value for " + quoteName(key) + " is a " + value.type_name() +
                                   ", expected a string");
                }
                file.m_metadata.emplace(key, value.get<std::string>());
            }
            continue;
        }
        if (name.empty()) fail(path, "header has a tensor with an empty name");
        file.m_tensors.push_back(parseTensor(path, name, entry, dataSize));
    }
    checkCoverage(path, file.m_tensors, dataSize);
    for (size_t i = 0; i < file.m_tensors.size(); ++i) file.m_byName.emplace(file.m_tensors[i].name, i);
    return file;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : m_path(std::move(other.m_path)),
      m_map(std::exchange(other.m_map, nullptr)),
      m_mapSize(std::exchange(other.m_mapSize, 0)),
      m_dataStart(other.m_dataStart),
      m_tensors(std::move(other.m_tensors)),
      m_byName(std::move(other.m_byName)),
      m_metadata(std::move(other.m_metadata)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
    if (this != &other) {
        release();
        m_path = std::move(other.m_path);
        m_map = std::exchange(other.m_map, nullptr);
        m_mapSize = std::exchange(other.m_mapSize, 0);
        m_dataStart = other.m_dataStart;
        m_tensors = std::move(other.m_tensors);
        m_byName = std::move(other.m_byName);
        m_metadata = std::move(other.m_metadata);
    }
    return *this;
}

SafetensorsFile::~SafetensorsFile() { release(); }

void SafetensorsFile::release() noexcept {
    if (m_map) ::munmap(const_cast<uint8_t*>(m_map), m_mapSize);
    m_map = nullptr;
    m_mapSize = 0;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
    const auto it = m_byName.find(name);
    return it == m_byName.end() ? nullptr : &m_tensors[it->second];
}

const uint8_t* SafetensorsFile::data(const TensorInfo& info) const {
    return m_map + m_dataStart + info.begin;
}

// [SECTION] writer

void writeSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata) {
    json header = json::object();
    uint64_t offset = 0;
    for (const TensorToWrite& t : tensors) {
        const std::string tensor = "tensor " + quoteName(t.name);
        if (t.name.empty()) fail(path, "cannot write a tensor with an empty name");
        if (t.name == "__metadata__") fail(path, "cannot write a tensor named '__metadata__'");
        if (header.contains(t.name)) fail(path, tensor + " appears twice");
        for (int64_t dim : t.shape)
            if (dim < 0) fail(path, tensor + " shape " + shapeText(t.shape) + " has a negative dimension");
        const std::string layout = shapeText(t.shape) + " x " + dtypeName(t.dtype);
        const std::optional<uint64_t> bytes = byteCount(t.shape, t.dtype);
        if (!bytes) fail(path, tensor + " shape " + layout + " overflows 64-bit byte counts");
        if (*bytes != t.nbytes) {
            fail(path, tensor + " has " + std::to_string(t.nbytes) + " bytes but shape " + layout +
                           " needs " + std::to_string(*bytes));
        }
        if (t.nbytes > 0 && t.data == nullptr) fail(path, tensor + " has no data pointer");
        header[t.name] = json{{"dtype", dtypeName(t.dtype)},
                              {"shape", t.shape},
                              {"data_offsets", json::array({offset, offset + t.nbytes})}};
        offset += t.nbytes;
    }
    if (!metadata.empty()) header["__metadata__"] = metadata;

    std::string text;
    try {
        text = header.dump();
    } catch (const json::exception&) {
        fail(path, "a tensor name or metadata entry is not valid UTF-8");
    }
    text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
    uint8_t length[8];
    const uint64_t headerSize = text.size();
    for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(headerSize >> (8 * i));

    AtomicFileWriter writer(path);
    writer.write(length, sizeof length);
    writer.write(text.data(), text.size());
    for (const TensorToWrite& t : tensors) writer.write(t.data, t.nbytes);
    writer.commit();
}

// [SECTION] SafetensorsShards

namespace {

// Shard names come from the index file: keep them inside the checkpoint directory.
bool isContainedRelativePath(const std::string& name) {
    if (name.empty() || name.front() == '/') return false;
    for (const auto& part : std::filesystem::path(name))
        if (part == "..") return false;
    return true;
}

}  // namespace

SafetensorsShards SafetensorsShards::open(const std::string& dirOrFile) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::string indexPath;
    std::string singlePath = dirOrFile;
    if (fs::is_directory(dirOrFile, ec)) {
        const fs::path dir(dirOrFile);
        singlePath.clear();
        if (fs::exists(dir / "model.safetensors.index.json", ec)) {
            indexPath = (dir / "model.safetensors.index.json").string();
        } else if (fs::exists(dir / "model.safetensors", ec)) {
            singlePath = (dir / "model.safetensors").string();
        } else {
            fail(dirOrFile, "holds neither model.safetensors nor model.safetensors.index.json");
        }
    } else if (dirOrFile.size() >= 5 && dirOrFile.compare(dirOrFile.size() - 5, 5, ".json") == 0) {
        indexPath = dirOrFile;
    }

    SafetensorsShards shards;
    if (indexPath.empty()) {
        shards.m_files.push_back(SafetensorsFile::open(singlePath));
        for (const TensorInfo& info : shards.m_files[0].tensors())
            shards.m_byName.emplace(info.name, Location{0, &info});
        return shards;
    }

    const std::string text = readFile(indexPath, kMaxIndexBytes);
    const json index = parseStrictJson(indexPath, text.data(), text.data() + text.size(), "index");
    if (!index.is_object())
        fail(indexPath, std::string("index is a JSON ") + index.type_name() + ", expected an object");
    const auto weightMap = index.find("weight_map");
    if (weightMap == index.end() || !weightMap->is_object())
        fail(indexPath, "index has no \"weight_map\" object");
    if (weightMap->empty()) fail(indexPath, "index \"weight_map\" is empty");

    const fs::path dir = fs::path(indexPath).parent_path();
    std::map<std::string, size_t> fileByShard;
    for (const auto& [name, shard] : weightMap->items()) {
        if (!shard.is_string()) {
            fail(indexPath, "weight_map entry " + quoteName(name) + " is a " + shard.type_name() +
                                ", expected a shard file name");
        }
        const std::string& shardName = shard.get_ref<const std::string&>();
        if (!isContainedRelativePath(shardName)) {
            fail(indexPath, "shard file name " + quoteName(shardName) + " for tensor " + quoteName(name) +
                                " is not a relative path inside the checkpoint directory");
        }
        auto [it, added] = fileByShard.emplace(shardName, shards.m_files.size());
        if (added) shards.m_files.push_back(SafetensorsFile::open((dir / shardName).string()));
        const TensorInfo* info = shards.m_files[it->second].find(name);
        if (!info) {
            fail(indexPath, "tensor " + quoteName(name) + " is mapped to " + quoteName(shardName) +
                                " but that file has no such tensor");
        }
        shards.m_byName.emplace(name, Location{it->second, info});
    }
    return shards;
}

const TensorInfo* SafetensorsShards::find(std::string_view name, const SafetensorsFile** file) const {
    const auto it = m_byName.find(name);
    if (it == m_byName.end()) return nullptr;
    if (file) *file = &m_files[it->second.file];
    return it->second.tensor;
}

std::vector<std::string> SafetensorsShards::names() const {
    std::vector<std::string> out;
    out.reserve(m_byName.size());
    for (const auto& entry : m_byName) out.push_back(entry.first);
    return out;
}

}  // namespace spanscope
