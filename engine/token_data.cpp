#include "engine/token_data.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include "engine/analysis_json.h"
#include "engine/atomic_file.h"
#include "engine/errors.h"
#include "engine/tokenizer.h"

namespace spanscope {
namespace {

constexpr char kMagic[8] = {'S', 'P', 'T', 'O', 'K', 'E', 'N', 'S'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 8 + 4 * 4 + 8;
constexpr std::string_view kSeparator = "<|endoftext|>";

template <typename T>
T readLe(const std::string& bytes, size_t offset) {
    T v{};
    std::memcpy(&v, bytes.data() + offset, sizeof(T));  // x86-64 and aarch64 are little-endian
    return v;
}

template <typename T>
void appendLe(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

}  // namespace

TokenData TokenData::load(const std::string& path) {
    const std::string bytes = readFile(path);
    if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), kMagic, 8) != 0)
        throw InputError(path + ": not a spanscope token file (expected the SPTOKENS header; make one with "
                                "`spanscope-cli tokenize`)");
    TokenData d;
    d.path = path;
    const auto version = readLe<uint32_t>(bytes, 8);
    if (version != kVersion)
        throw InputError(path + ": token file version " + std::to_string(version) + " is not supported (expected 1)");
    d.vocabSize = static_cast<int32_t>(readLe<uint32_t>(bytes, 12));
    d.endOfText = static_cast<int32_t>(readLe<uint32_t>(bytes, 16));
    d.documents = readLe<uint32_t>(bytes, 20);
    const auto count = readLe<uint64_t>(bytes, 24);
    if (d.vocabSize <= 0 || d.vocabSize > 65536)
        throw InputError(path + ": vocabulary size " + std::to_string(d.vocabSize) + " is outside 1..65536");
    if (d.endOfText < 0 || d.endOfText >= d.vocabSize)
        throw InputError(path + ": end-of-text id " + std::to_string(d.endOfText) + " is outside the vocabulary");
    if (count > (bytes.size() - kHeaderBytes) / 2 || bytes.size() - kHeaderBytes != count * 2)
        throw InputError(path + ": header says " + std::to_string(count) + " tokens but the file holds " +
                         std::to_string((bytes.size() - kHeaderBytes) / 2) + " (truncated or corrupt)");
    d.ids.resize(count);
    std::memcpy(d.ids.data(), bytes.data() + kHeaderBytes, count * 2);
    for (size_t i = 0; i < d.ids.size(); ++i)
        if (d.ids[i] >= d.vocabSize)
            throw InputError(path + ": token " + std::to_string(d.ids[i]) + " at position " + std::to_string(i) +
                             " is outside the vocabulary of " + std::to_string(d.vocabSize));
    d.hash = fnv1a64Hex(bytes);
    return d;
}

void TokenData::save(const std::string& path) const {
    if (vocabSize <= 0 || vocabSize > 65536)
        throw InputError(path + ": cannot store a vocabulary of " + std::to_string(vocabSize) + " as 16-bit ids");
    std::string header(kMagic, 8);
    appendLe<uint32_t>(header, kVersion);
    appendLe<uint32_t>(header, static_cast<uint32_t>(vocabSize));
    appendLe<uint32_t>(header, static_cast<uint32_t>(endOfText));
    appendLe<uint32_t>(header, static_cast<uint32_t>(documents));
    appendLe<uint64_t>(header, static_cast<uint64_t>(ids.size()));
    AtomicFileWriter w(path);
    w.write(header.data(), header.size());
    w.write(ids.data(), ids.size() * sizeof(uint16_t));
    w.commit();
}

std::vector<std::string_view> splitDocuments(std::string_view text) {
    std::vector<std::string_view> docs;
    size_t start = 0;
    auto push = [&](size_t end) {
        std::string_view d = text.substr(start, end - start);
        if (d.find_first_not_of(" \t\r\n") != std::string_view::npos) docs.push_back(d);
    };
    size_t pos = 0;
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        size_t lineEnd = eol == std::string_view::npos ? text.size() : eol;
        std::string_view line = text.substr(pos, lineEnd - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line == kSeparator) {
            push(pos);
            start = eol == std::string_view::npos ? text.size() : eol + 1;
        }
        pos = eol == std::string_view::npos ? text.size() : eol + 1;
    }
    if (start < text.size()) push(text.size());
    return docs;
}

TokenData tokenizeDocuments(const Tokenizer& tokenizer, const std::vector<std::string_view>& documents, int threads,
                            const std::function<void(size_t, size_t)>& progress) {
    auto eot = tokenizer.tokenId(kSeparator);
    if (!eot) throw InputError("the tokenizer has no <|endoftext|> token to separate documents");
    if (tokenizer.vocabSize() > 65536)
        throw InputError("the tokenizer has " + std::to_string(tokenizer.vocabSize()) +
                         " tokens; token files hold at most 65536");
    std::vector<std::vector<int32_t>> encoded(documents.size());
    std::atomic<size_t> next{0}, done{0};
    std::exception_ptr failure;
    std::mutex failureMutex;
    auto work = [&](bool reports) {
        for (size_t i; (i = next.fetch_add(1)) < documents.size();) {
            if (reports && progress) progress(done.load(), documents.size());
            try {
                encoded[i] = tokenizer.encode(documents[i]).ids;
            } catch (...) {
                std::lock_guard<std::mutex> lock(failureMutex);
                if (!failure) failure = std::current_exception();
                next = documents.size();
            }
            done.fetch_add(1);
        }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < std::max(1, threads); ++t) pool.emplace_back(work, false);
    work(true);
    for (auto& t : pool) t.join();
    if (progress) progress(done.load(), documents.size());
    if (failure) std::rethrow_exception(failure);
    TokenData d;
    d.vocabSize = tokenizer.vocabSize();
    d.endOfText = *eot;
    d.documents = static_cast<int64_t>(documents.size());
    size_t total = 0;
    for (const auto& e : encoded) total += e.size() + 1;
    d.ids.reserve(total);
    for (const auto& e : encoded) {
        for (int32_t id : e) d.ids.push_back(static_cast<uint16_t>(id));
        d.ids.push_back(static_cast<uint16_t>(*eot));
    }
    return d;
}

}  // namespace spanscope
