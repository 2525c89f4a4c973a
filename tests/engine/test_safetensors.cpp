// Tests of the safetensors reader/writer, the shard index and the atomic file helpers.
// Every test works in its own fresh temporary directory, removed afterwards.
#include "engine/atomic_file.h"
#include "engine/errors.h"
#include "engine/safetensors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sys/resource.h>

namespace spanscope {
namespace {

namespace fs = std::filesystem;

class TempDirTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "spanscope_safetensors_XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
        m_dir = pattern;
    }
    void TearDown() override { std::error_code ec; fs::remove_all(m_dir, ec); }
    std::string pathOf(const std::string& name) const { return m_dir + "/" + name; }
    std::vector<std::string> listDir() const {
        std::vector<std::string> names;
        for (const auto& entry : fs::directory_iterator(m_dir))
            names.push_back(entry.path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    }
    void writeBytes(const std::string& path, const std::string& bytes) const {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        ASSERT_TRUE(out.good()) << path;
    }

    std::string m_dir;
};

// 8-byte little-endian length (the header's own size unless `claimedLength` lies), header, then
// `dataBytes` filler bytes.
std::string rawFile(const std::string& header, size_t dataBytes, std::optional<uint64_t> claimedLength = {}) {
    const uint64_t length = claimedLength.value_or(header.size());
    std::string out;
    for (int i = 0; i < 8; ++i) out += static_cast<char>((length >> (8 * i)) & 0xff);
    return out + header + std::string(dataBytes, '\x5a');
}

// Runs `action`, which must throw an InputError of one line that starts with `path` and contains
// `expected`.
void expectInputError(const std::function<void()>& action, const std::string& path,
                      const std::string& expected) {
    try {
        action();
        ADD_FAILURE() << "no InputError; expected one containing: " << expected;
    } catch (const InputError& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find(expected), std::string::npos) << message << "\nexpected: " << expected;
        EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << "message does not start with the path: " << message;
        EXPECT_EQ(message.find('\n'), std::string::npos) << "message is not one line: " << message;
    }
}

std::vector<uint8_t> randomBytes(std::mt19937& rng, size_t count, bool booleans) {
    std::vector<uint8_t> bytes(count);
    std::uniform_int_distribution<int> byte(0, booleans ? 1 : 255);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(byte(rng));
    return bytes;
}

uint64_t headerLengthOf(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    unsigned char length[8] = {};
    in.read(reinterpret_cast<char*>(length), 8);
    uint64_t value = 0;
    for (int i = 7; i >= 0; --i) value = (value << 8) | length[i];
    return value;
}

// ---- round trips --------------------------------------------------------------------------------

class Safetensors : public TempDirTest {};

TEST_F(Safetensors, RoundTripOfEveryDtypeKeepsBytesShapesAndMetadata) {
    std::mt19937 rng(20240611);
    const std::vector<std::pair<DType, std::vector<int64_t>>> specs = {
        {DType::F64, {3, 5}}, {DType::F32, {7}},       {DType::F16, {2, 3, 4}}, {DType::BF16, {9, 1}},
        {DType::I64, {4}},    {DType::I32, {1, 1, 6}}, {DType::I16, {5}},       {DType::I8, {13}},
        {DType::U8, {3, 11}}, {DType::Bool, {17}},     {DType::F32, {}},
    };
    std::vector<std::vector<uint8_t>> contents;
    contents.reserve(specs.size());  // tensors point into these buffers
    std::vector<TensorToWrite> tensors;
    for (size_t i = 0; i < specs.size(); ++i) {
        const auto& [dtype, shape] = specs[i];
        size_t count = dtypeSize(dtype);
        for (int64_t dim : shape) count *= static_cast<size_t>(dim);
        contents.push_back(randomBytes(rng, count, dtype == DType::Bool));
        tensors.push_back({std::string("layer.") + std::to_string(i) + "." + dtypeName(dtype), dtype, shape,
                           contents.back().data(), contents.back().size()});
    }
    const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ünïcode ok"}};
    const std::string path = pathOf("model.safetensors");
    writeSafetensors(path, tensors, metadata);

    EXPECT_EQ((8 + headerLengthOf(path)) % 8, 0u) << "data section should start 8-byte aligned";
    const SafetensorsFile file = SafetensorsFile::open(path);
    EXPECT_EQ(file.path(), path);
    EXPECT_EQ(file.metadata(), metadata);
    ASSERT_EQ(file.tensors().size(), tensors.size());
    for (size_t i = 1; i < file.tensors().size(); ++i)
        EXPECT_LE(file.tensors()[i - 1].end, file.tensors()[i].begin);
    for (size_t i = 0; i < tensors.size(); ++i) {
        SCOPED_TRACE(tensors[i].name);
        const TensorInfo* info = file.find(tensors[i].name);
        ASSERT_NE(info, nullptr);
        EXPECT_EQ(info->dtype, tensors[i].dtype);
        EXPECT_EQ(info->shape, tensors[i].shape);
        EXPECT_EQ(static_cast<size_t>(info->numel()) * dtypeSize(info->dtype), contents[i].size());
        ASSERT_EQ(info->end - info->begin, contents[i].size());
        EXPECT_EQ(std::memcmp(file.data(*info), contents[i].data(), contents[i].size()), 0);
    }
    EXPECT_EQ(file.find("layer.0"), nullptr);
}

TEST_F(Safetensors, ZeroSizeTensorRoundTripsBesideOthers) {
    const uint8_t bytes[3] = {1, 2, 3};
    const std::string path = pathOf("zero.safetensors");
    writeSafetensors(path, {{"before", DType::U8, {3}, bytes, 3},
                            {"empty", DType::F32, {0, 5}, nullptr, 0},
                            {"after", DType::U8, {3}, bytes, 3}});
    const SafetensorsFile file = SafetensorsFile::open(path);
    const TensorInfo* empty = file.find("empty");
    ASSERT_NE(empty, nullptr);
    EXPECT_EQ(empty->numel(), 0);
    EXPECT_EQ(empty->begin, empty->end);
    EXPECT_EQ((std::vector<int64_t>{0, 5}), empty->shape);
    EXPECT_EQ(std::memcmp(file.data(*file.find("after")), bytes, 3), 0);
}

TEST_F(Safetensors, FileWithOnlyMetadataRoundTrips) {
    const std::string path = pathOf("meta.safetensors");
    writeSafetensors(path, {}, {{"k", "v"}});
    const SafetensorsFile file = SafetensorsFile::open(path);
    EXPECT_TRUE(file.tensors().empty());
    EXPECT_EQ(file.metadata().at("k"), "v");
}

TEST_F(Safetensors, TensorsAreListedByOffsetAndSurviveMoves) {
    const uint8_t z[2] = {7, 8}, a[1] = {9};
    const std::string path = pathOf("order.safetensors");
    writeSafetensors(path, {{"z", DType::U8, {2}, z, 2}, {"a", DType::U8, {1}, a, 1}});
    SafetensorsFile first = SafetensorsFile::open(path);
    SafetensorsFile moved(std::move(first));
    ASSERT_EQ(moved.tensors().size(), 2u);
    EXPECT_EQ(moved.tensors()[0].name, "z");
    EXPECT_EQ(moved.tensors()[1].name, "a");
    SafetensorsFile assigned = SafetensorsFile::open(path);
    assigned = std::move(moved);
    EXPECT_EQ(assigned.data(*assigned.find("a"))[0], 9);
}

TEST_F(Safetensors, HandWrittenFileWithUnalignedDataAndSpacedHeaderIsRead) {
    const std::string header =
        R"( {"__metadata__": {"a": "b"}, "w": {"shape": [2], "data_offsets": [0, 2], "dtype": "I8"}}  )";
    const std::string path = pathOf("hand.safetensors");
    writeBytes(path, rawFile(header, 2));
    const SafetensorsFile file = SafetensorsFile::open(path);
    ASSERT_NE(file.find("w"), nullptr);
    EXPECT_EQ(file.data(*file.find("w"))[0], 0x5a);
    EXPECT_EQ(file.metadata().at("a"), "b");
}

// ---- files that cannot be opened at all ---------------------------------------------------------

TEST_F(Safetensors, OpeningMissingPathSaysCannotOpen) {
    const std::string path = pathOf("absent.safetensors");
    expectInputError([&] { SafetensorsFile::open(path); }, path, "cannot open (No such file or directory)");
}

TEST_F(Safetensors, OpeningDirectorySaysIsADirectory) {
    expectInputError([&] { SafetensorsFile::open(m_dir); }, m_dir, "is a directory");
}

TEST_F(Safetensors, OpeningEmptyFileSaysFileIsEmpty) {
    const std::string path = pathOf("empty.safetensors");
    writeBytes(path, "");
    expectInputError([&] { SafetensorsFile::open(path); }, path, "file is empty");
}

// ---- truncation at several points of a valid file -----------------------------------------------

struct TruncationCase {
    const char* name;
    enum Base { kFileStart, kHeaderStart, kDataStart, kFileEnd } base;
    int64_t delta;
    const char* expected;
};

void PrintTo(const TruncationCase& c, std::ostream* os) {
    *os << c.name << " (expects '" << c.expected << "')";
}

class TruncatedSafetensors : public TempDirTest, public ::testing::WithParamInterface<TruncationCase> {};

TEST_P(TruncatedSafetensors, IsRejectedWithoutReadingPastTheEnd) {
    const TruncationCase& c = GetParam();
    std::vector<float> weights(64, 1.5f);
    const std::vector<int64_t> ids = {1, 2, 3};
    const std::string full = pathOf("full.safetensors");
    writeSafetensors(full, {{"weights", DType::F32, {8, 8}, weights.data(), 256},
                            {"ids", DType::I64, {3}, ids.data(), 24}});
    const std::string bytes = readFile(full);
    const auto size = static_cast<int64_t>(bytes.size());
    const int64_t bases[] = {0, 8, 8 + static_cast<int64_t>(headerLengthOf(full)), size};
    const int64_t cut = bases[c.base] + c.delta;
    ASSERT_GE(cut, 0);
    ASSERT_LT(cut, size);
    const std::string path = pathOf("cut.safetensors");
    writeBytes(path, bytes.substr(0, static_cast<size_t>(cut)));
    expectInputError([&] { SafetensorsFile::open(path); }, path, c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Cuts, TruncatedSafetensors,
    ::testing::ValuesIn(std::vector<TruncationCase>{
        {"AtZeroBytes", TruncationCase::kFileStart, 0, "file is empty"},
        {"InsideTheLength", TruncationCase::kFileStart, 5, "file is 5 bytes, too short"},
        {"RightAfterTheLength", TruncationCase::kHeaderStart, 0, "exceeds file size 8"},
        {"InsideTheHeader", TruncationCase::kHeaderStart, 20, "exceeds file size 28"},
        {"RightAfterTheHeader", TruncationCase::kDataStart, 0, "exceed the data section of 0 bytes"},
        {"InsideTheFirstTensor", TruncationCase::kDataStart, 100, "exceed the data section of 100 bytes"},
        {"OneByteShort", TruncationCase::kFileEnd, -1, "exceed the data section of 279 bytes"}}),
    [](const ::testing::TestParamInfo<TruncationCase>& info) { return std::string(info.param.name); });

// ---- malformed headers --------------------------------------------------------------------------

struct MalformedCase {
    const char* name;
    std::string header;
    size_t dataBytes;
    std::string expected;
    std::optional<uint64_t> claimedLength = std::nullopt;  // header length field when it lies
};

void PrintTo(const MalformedCase& c, std::ostream* os) {
    *os << c.name << ": header " << c.header << " + " << c.dataBytes << " data bytes, expects '" << c.expected
        << "'";
}

class MalformedSafetensors : public TempDirTest, public ::testing::WithParamInterface<MalformedCase> {};

TEST_P(MalformedSafetensors, IsRejectedWithMessageNamingTheProblem) {
    const MalformedCase& c = GetParam();
    const std::string path = pathOf("bad.safetensors");
    writeBytes(path, rawFile(c.header, c.dataBytes, c.claimedLength));
    expectInputError([&] { SafetensorsFile::open(path); }, path, c.expected);
}

// One header entry: "name": {"dtype": ..., "shape": ..., "data_offsets": ...}.
std::string entry(const char* name, const char* shape, const char* offsets, const char* dtype = "U8") {
    return std::string("\"") + name + R"(": {"dtype": ")" + dtype + R"(", "shape": )" + shape +
           R"(, "data_offsets": )" + offsets + "}";
}
std::string header(const std::string& first, const std::string& second = "") {
    return "{" + first + (second.empty() ? "" : ", " + second) + "}";
}

INSTANTIATE_TEST_SUITE_P(
    Headers, MalformedSafetensors,
    ::testing::ValuesIn(std::vector<MalformedCase>{
        {"HeaderLengthZero", "{}", 0, "header length is 0", 0},
        {"HeaderLengthLargerThanFile", "{}", 0, "header length 9999999 exceeds file size 10", 9999999},
        {"HeaderLengthAboveHundredMebibytes", "{}", 0, "exceeds the limit of 104857600 bytes", uint64_t(1) << 63},
        {"HeaderNotJson", R"({"a": )", 0, "header is not valid JSON"},
        {"HeaderJsonArray", "[1, 2]", 0, "header is a JSON array, expected an object"},
        {"HeaderJsonString", R"("text")", 0, "header is a JSON string, expected an object"},
        {"HeaderWithByteOrderMark", "\xEF\xBB\xBF{}", 0, "header starts with a UTF-8 byte-order mark"},
        {"HeaderWithInvalidUtf8", "{\"a\xff\": 1}", 0, "header is not valid JSON"},
        {"HeaderPaddedWithNul", std::string("{}\0\0", 4), 0, "header contains a NUL byte at offset 2"},
        {"HeaderWithGarbageAfterNul", std::string("{}\0x", 4), 0, "header contains a NUL byte at offset 2"},
        {"HeaderWithTrailingGarbage", "{} x", 0, "header is not valid JSON"},
        {"DuplicateTensorName", header(entry("a", "[1]", "[0, 1]"), entry("a", "[1]", "[0, 1]")), 1,
         "header has duplicate key 'a'"},
        {"EmptyTensorName", header(entry("", "[1]", "[0, 1]")), 1, "tensor with an empty name"},
        {"TensorEntryNotObject", R"({"a": 3})", 0, "tensor 'a' is a number, expected an object"},
        {"MissingDtype", R"({"a": {"shape": [1], "data_offsets": [0, 1]}})", 1, "tensor 'a' has no \"dtype\""},
        {"UnknownDtype", header(entry("a", "[1]", "[0, 1]", "F8_E4M3")), 1, "tensor 'a' has unknown dtype 'F8_E4M3'"},
        {"LowercaseDtype", header(entry("a", "[1]", "[0, 4]", "f32")), 4, "unknown dtype 'f32'"},
        {"ControlByteInNameIsEscaped", header(entry("a\\u0001", "[1]", "[0, 1]", "X")), 1,
         "tensor 'a\\x01' has unknown dtype 'X'"},
        {"NegativeShape", header(entry("a", "[-1, 2]", "[0, 0]")), 0, "tensor 'a' shape has negative dimension -1"},
        {"FractionalShape", header(entry("a", "[1.5]", "[0, 1]")), 1, "shape element 1.5 is not an integer"},
        {"ShapeNotArray", header(entry("a", "4", "[0, 4]")), 4, "\"shape\" is a number, expected an array"},
        {"OffsetsNegative", header(entry("a", "[0]", "[-4, 0]")), 0, "[-4,0] are not two non-negative integers"},
        {"OffsetsThreeNumbers", header(entry("a", "[4]", "[0, 4, 8]")), 8, "are not two non-negative integers"},
        {"OffsetsBeginAfterEnd", header(entry("a", "[4]", "[4, 0]")), 4, "data_offsets [4, 0] begin after they end"},
        {"OffsetsNotMatchingShape", header(entry("wte", "[2, 4]", "[0, 12]", "F32")), 12,
         "tensor 'wte' data_offsets [0, 12] do not match shape [2,4] x F32 (32 bytes)"},
        {"OffsetsOutOfRange", header(entry("a", "[2]", "[0, 8]", "F32")), 4,
         "tensor 'a' data_offsets [0, 8] exceed the data section of 4 bytes"},
        {"OffsetsFarOutOfRange", header(entry("a", "[1]", "[18446744073709551614, 18446744073709551615]")), 1,
         "exceed the data section of 1 bytes"},
        {"ShapeProductOverflows", header(entry("a", "[4294967296, 4294967296, 2]", "[0, 0]")), 0,
         "shape [4294967296,4294967296,2] x U8 overflows 64-bit byte counts"},
        {"OverlappingTensors", header(entry("a", "[8]", "[0, 8]"), entry("b", "[8]", "[4, 12]")), 12,
         "tensors 'a' [0, 8] and 'b' [4, 12] overlap"},
        {"TwoTensorsSharingBytes", header(entry("a", "[4]", "[0, 4]"), entry("b", "[4]", "[0, 4]")), 4,
         "tensors 'a' [0, 4] and 'b' [0, 4] overlap"},
        {"HoleBetweenTensors", header(entry("a", "[4]", "[0, 4]"), entry("b", "[4]", "[8, 12]")), 12,
         "4-byte hole in the data section between 'a' and 'b'"},
        {"HoleBeforeFirstTensor", header(entry("a", "[4]", "[4, 8]")), 8, "4-byte hole in the data section before 'a'"},
        {"TrailingBytesAfterLastTensor", header(entry("a", "[4]", "[0, 4]")), 6, "2 trailing bytes after the last"},
        {"DataButNoTensors", "{}", 3, "3 trailing bytes after the last tensor"},
        {"MetadataNotObject", R"({"__metadata__": "x"})", 0, "__metadata__ is a string, expected an object"},
        {"MetadataValueNotString", R"({"__metadata__": {"k": 1}})", 0,
         "__metadata__ value for 'k' is a number, expected a string"}}),
    [](const ::testing::TestParamInfo<MalformedCase>& info) { return std::string(info.param.name); });

// ---- writer -------------------------------------------------------------------------------------

TEST_F(Safetensors, WriteIntoMissingDirectoryFailsClearlyAndCreatesNothing) {
    const uint8_t byte = 1;
    const std::string path = pathOf("missing/model.safetensors");
    expectInputError([&] { writeSafetensors(path, {{"a", DType::U8, {1}, &byte, 1}}); }, path,
                     "directory '" + pathOf("missing") + "' does not exist");
    EXPECT_TRUE(listDir().empty());
}

TEST_F(Safetensors, WriteRejectsRepeatedNamesAndLeavesNoFile) {
    const uint8_t byte = 1;
    const std::string path = pathOf("dup.safetensors");
    const TensorToWrite tensor{"a", DType::U8, {1}, &byte, 1};
    expectInputError([&] { writeSafetensors(path, {tensor, tensor}); }, path, "tensor 'a' appears twice");
    EXPECT_TRUE(listDir().empty());
}

TEST_F(Safetensors, WriteRejectsByteCountThatDoesNotMatchShape) {
    const float values[3] = {};
    const std::string path = pathOf("short.safetensors");
    expectInputError([&] { writeSafetensors(path, {{"wte", DType::F32, {2, 4}, values, 12}}); }, path,
                     "tensor 'wte' has 12 bytes but shape [2,4] x F32 needs 32");
}

TEST_F(Safetensors, WriteRejectsReservedAndInvalidUtf8Names) {
    const uint8_t byte = 1;
    const std::string path = pathOf("names.safetensors");
    expectInputError([&] { writeSafetensors(path, {{"__metadata__", DType::U8, {1}, &byte, 1}}); }, path,
                     "cannot write a tensor named '__metadata__'");
    expectInputError([&] { writeSafetensors(path, {{"bad\xff", DType::U8, {1}, &byte, 1}}); }, path,
                     "not valid UTF-8");
    EXPECT_TRUE(listDir().empty());
}

TEST_F(Safetensors, OverwritingExistingFileReplacesItWhole) {
    const std::string path = pathOf("model.safetensors");
    const std::vector<uint8_t> big(1 << 20, 0xab);
    writeSafetensors(path, {{"big", DType::U8, {1 << 20}, big.data(), big.size()}});
    const SafetensorsFile oldView = SafetensorsFile::open(path);  // an open map keeps the old inode
    const int16_t small[2] = {-1, 2};
    writeSafetensors(path, {{"small", DType::I16, {2}, small, 4}});
    EXPECT_EQ(fs::file_size(path), 8 + headerLengthOf(path) + 4);
    const SafetensorsFile file = SafetensorsFile::open(path);
    ASSERT_EQ(file.tensors().size(), 1u);
    EXPECT_EQ(file.find("big"), nullptr);
    EXPECT_EQ(std::memcmp(file.data(*file.find("small")), small, 4), 0);
    EXPECT_EQ(oldView.data(*oldView.find("big"))[12345], 0xab);
    EXPECT_EQ(listDir(), std::vector<std::string>{"model.safetensors"});
}

// Lowers RLIMIT_FSIZE (writes past it fail with EFBIG, like a full disk) and restores it.
struct FileSizeLimit {
    explicit FileSizeLimit(rlim_t bytes) : savedHandler(std::signal(SIGXFSZ, SIG_IGN)) {
        ::getrlimit(RLIMIT_FSIZE, &saved);
        rlimit lowered = saved;
        lowered.rlim_cur = bytes;
        ::setrlimit(RLIMIT_FSIZE, &lowered);
    }
    ~FileSizeLimit() {
        ::setrlimit(RLIMIT_FSIZE, &saved);
        std::signal(SIGXFSZ, savedHandler);
    }
    rlimit saved{};
    void (*savedHandler)(int);
};

TEST_F(Safetensors, WriteThatRunsOutOfSpaceFailsAndKeepsThePreviousFile) {
    const std::string path = pathOf("model.safetensors");
    const uint8_t old[4] = {1, 2, 3, 4};
    writeSafetensors(path, {{"old", DType::U8, {4}, old, 4}});
    const std::vector<uint8_t> big(1 << 20, 7);
    {
        FileSizeLimit limit(64 * 1024);
        const TensorToWrite tensor{"big", DType::U8, {1 << 20}, big.data(), big.size()};
        expectInputError([&] { writeSafetensors(path, {tensor}); }, path, "cannot write (File too large)");
    }
    const SafetensorsFile file = SafetensorsFile::open(path);
    ASSERT_NE(file.find("old"), nullptr);
    EXPECT_EQ(std::memcmp(file.data(*file.find("old")), old, 4), 0);
    EXPECT_EQ(listDir(), std::vector<std::string>{"model.safetensors"});
}

// ---- atomic file helpers ------------------------------------------------------------------------

TEST_F(Safetensors, ReadFileNamesThePathForMissingFileDirectoryAndSizeOverLimit) {
    const std::string path = pathOf("ten.txt");
    expectInputError([&] { readFile(path); }, path, "cannot open (No such file or directory)");
    expectInputError([&] { readFile(m_dir); }, m_dir, "is a directory");
    writeBytes(path, "0123456789");
    expectInputError([&] { readFile(path, 4); }, path, "file is 10 bytes, more than the limit 4");
    EXPECT_EQ(readFile(path, 10), "0123456789");
}

TEST_F(Safetensors, WriteFileAtomicRoundTripsBinaryAndLeavesNoTempFile) {
    const std::string path = pathOf("blob.bin");
    const std::string bytes("a\0b\xff\n", 5);
    writeFileAtomic(path, bytes);
    writeFileAtomic(path, bytes + bytes);
    EXPECT_EQ(readFile(path), bytes + bytes);
    EXPECT_EQ(listDir(), std::vector<std::string>{"blob.bin"});
}

TEST_F(Safetensors, WriteFileAtomicOntoDirectoryFailsAndRemovesTempFile) {
    const std::string path = pathOf("sub");
    fs::create_directory(path);
    expectInputError([&] { writeFileAtomic(path, "x"); }, path, "cannot replace");
    EXPECT_EQ(listDir(), std::vector<std::string>{"sub"});
}

// ---- shards -------------------------------------------------------------------------------------

class SafetensorsShardsTest : public TempDirTest {
protected:
    // Two shards: model-00001 holds a (F32 [2]) and b (I8 [3]); model-00002 holds c (I64 [1]).
    void writeTwoShards(const std::string& index) {
        writeSafetensors(pathOf("model-00001.safetensors"),
                         {{"a", DType::F32, {2}, m_a, 8}, {"b", DType::I8, {3}, m_b, 3}});
        writeSafetensors(pathOf("model-00002.safetensors"), {{"c", DType::I64, {1}, m_c, 8}});
        writeFileAtomic(pathOf("model.safetensors.index.json"), index);
    }
    const float m_a[2] = {1.0f, -2.0f};
    const int8_t m_b[3] = {-3, 4, 5};
    const int64_t m_c[1] = {1234567890123};
    const std::string m_index = R"({"metadata": {"total_size": 19}, "weight_map": {
        "a": "model-00001.safetensors", "b": "model-00001.safetensors", "c": "model-00002.safetensors"}})";
};

TEST_F(SafetensorsShardsTest, ShardedIndexRoundTripFindsEveryTensorInItsShard) {
    writeTwoShards(m_index);
    for (const std::string& source : {m_dir, pathOf("model.safetensors.index.json")}) {
        SCOPED_TRACE(source);
        const SafetensorsShards shards = SafetensorsShards::open(source);
        EXPECT_EQ(shards.names(), (std::vector<std::string>{"a", "b", "c"}));
        EXPECT_EQ(shards.files().size(), 2u);
        const SafetensorsFile* file = nullptr;
        const TensorInfo* c = shards.find("c", &file);
        ASSERT_NE(c, nullptr);
        ASSERT_NE(file, nullptr);
        EXPECT_EQ(fs::path(file->path()).filename(), "model-00002.safetensors");
        EXPECT_EQ(std::memcmp(file->data(*c), m_c, 8), 0);
        const TensorInfo* b = shards.find("b", &file);
        ASSERT_NE(b, nullptr);
        EXPECT_EQ(fs::path(file->path()).filename(), "model-00001.safetensors");
        EXPECT_EQ(std::memcmp(file->data(*b), m_b, 3), 0);
        EXPECT_EQ(shards.find("d"), nullptr);
    }
}

TEST_F(SafetensorsShardsTest, DirectoryOrPathOfSingleModelFileOpensAsOneShard) {
    writeSafetensors(pathOf("model.safetensors"), {{"a", DType::F32, {2}, m_a, 8}});
    for (const std::string& source : {m_dir, pathOf("model.safetensors")}) {
        const SafetensorsShards shards = SafetensorsShards::open(source);
        EXPECT_EQ(shards.names(), std::vector<std::string>{"a"});
        const SafetensorsFile* file = nullptr;
        ASSERT_NE(shards.find("a", &file), nullptr);
        EXPECT_EQ(file->path(), pathOf("model.safetensors"));
    }
}

TEST_F(SafetensorsShardsTest, DirectoryWithoutModelFilesIsRejected) {
    expectInputError([&] { SafetensorsShards::open(m_dir); }, m_dir,
                     "holds neither model.safetensors nor model.safetensors.index.json");
}

TEST_F(SafetensorsShardsTest, IndexMappingTensorToShardWithoutItIsRejected) {
    writeTwoShards(R"({"weight_map": {"a": "model-00001.safetensors", "c": "model-00001.safetensors"}})");
    expectInputError([&] { SafetensorsShards::open(m_dir); }, pathOf("model.safetensors.index.json"),
                     "tensor 'c' is mapped to 'model-00001.safetensors' but that file has no such tensor");
}

TEST_F(SafetensorsShardsTest, IndexNamingMissingShardFileNamesThatFile) {
    writeTwoShards(R"({"weight_map": {"a": "model-00009.safetensors"}})");
    expectInputError([&] { SafetensorsShards::open(m_dir); }, pathOf("model-00009.safetensors"),
                     "cannot open (No such file or directory)");
}

TEST_F(SafetensorsShardsTest, IndexShardPathEscapingTheDirectoryIsRejected) {
    writeTwoShards(R"({"weight_map": {"a": "../model-00001.safetensors"}})");
    expectInputError([&] { SafetensorsShards::open(m_dir); }, pathOf("model.safetensors.index.json"),
                     "shard file name '../model-00001.safetensors' for tensor 'a' is not a relative path");
}

TEST_F(SafetensorsShardsTest, IndexWithoutWeightMapOrNotJsonIsRejected) {
    const std::string index = pathOf("model.safetensors.index.json");
    writeTwoShards(R"({"metadata": {}})");
    expectInputError([&] { SafetensorsShards::open(m_dir); }, index, "index has no \"weight_map\" object");
    writeFileAtomic(index, R"({"weight_map": {"a": 1}})");
    expectInputError([&] { SafetensorsShards::open(m_dir); }, index, "weight_map entry 'a' is a number");
    writeFileAtomic(index, "{weight_map");
    expectInputError([&] { SafetensorsShards::open(m_dir); }, index, "index is not valid JSON");
}

}  // namespace
}  // namespace spanscope
