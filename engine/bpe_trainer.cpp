// BPE training: count pre-token pieces, then merge the most frequent pair until the vocabulary
// is full. See bpe_trainer.h for the rules; this file explains the bookkeeping.
#include "engine/bpe_trainer.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>

#include "engine/errors.h"
#include "engine/utf8.h"

namespace spanscope {

namespace {

uint64_t pairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int32_t leftOf(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t rightOf(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

// One distinct pre-token piece: its current tokens and how often it occurs in the texts.
struct Piece {
    std::vector<int32_t> symbols;
    int64_t count = 0;
};

// Candidate merge in the lazy heap. `count` is the pair's count when the entry was pushed; an
// entry whose count no longer matches is stale and is re-pushed with the current count.
struct HeapEntry {
    int64_t count;
    uint64_t pair;
};

// Reports progress at most once per 1/kProgressSteps, never decreasing.
class ProgressReporter {
public:
    explicit ProgressReporter(const std::function<void(double)>& callback) : m_callback(callback) {}
    void report(double fraction) {
        if (!m_callback) return;
        const auto step = static_cast<int>(std::floor(std::clamp(fraction, 0.0, 1.0) * kProgressSteps));
        if (step <= m_lastStep) return;
        m_lastStep = step;
        m_callback(static_cast<double>(step) / kProgressSteps);
    }

private:
    static constexpr int kProgressSteps = 200;
    const std::function<void(double)>& m_callback;
    int m_lastStep = -1;
};

void checkOptions(const BpeTrainerOptions& options) {
    std::set<std::string> seen;
    for (const std::string& special : options.specialTokens) {
        if (special.empty()) throw InputError("trainBpe: specialTokens: a special token is empty");
        if (const auto bad = findInvalidUtf8(special)) {
            throw InputError("trainBpe: specialTokens: invalid UTF-8 at byte offset " + std::to_string(*bad) +
                             " of a special token");
        }
        if (!seen.insert(special).second) {
            throw InputError("trainBpe: specialTokens: '" + special + "' is listed twice");
        }
    }
    const int64_t minimum = 256 + static_cast<int64_t>(options.specialTokens.size());
    if (options.vocabSize < minimum) {
        throw InputError("trainBpe: vocabSize " + std::to_string(options.vocabSize) +
                         " is smaller than the 256 byte tokens plus " +
                         std::to_string(options.specialTokens.size()) + " special tokens");
    }
}

}  // namespace

Tokenizer trainBpe(const std::vector<std::string_view>& texts, const BpeTrainerOptions& options) {
    checkOptions(options);
    ProgressReporter progress(options.progress);
    const int64_t minFrequency = std::max<int64_t>(1, options.minFrequency);

    // 1. Count distinct pieces. Counting takes the first 10% of the progress range.
    size_t totalBytes = 0, doneBytes = 0;
    for (const std::string_view text : texts) totalBytes += text.size();
    std::unordered_map<std::string_view, int64_t> pieceCounts;
    std::vector<std::string_view> split;
    for (size_t t = 0; t < texts.size(); ++t) {
        if (const auto bad = findInvalidUtf8(texts[t])) {
            throw InputError("trainBpe: text " + std::to_string(t) + ": invalid UTF-8 at byte offset " +
                             std::to_string(*bad));
        }
        split.clear();
        splitGpt2Pretokens(texts[t], split);
        for (const std::string_view piece : split) ++pieceCounts[piece];
        doneBytes += texts[t].size();
        progress.report(totalBytes ? 0.1 * static_cast<double>(doneBytes) / static_cast<double>(totalBytes)
                                   : 0.1);
    }

    // 2. Initial state: every piece as single bytes; pair counts and pair -> pieces index.
    std::vector<std::string> tokens;
    tokens.reserve(std::min<size_t>(static_cast<size_t>(options.vocabSize), 1 << 16));
    for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
    std::unordered_map<std::string, int32_t> idOfBytes;
    for (int32_t id = 0; id < 256; ++id) idOfBytes.emplace(tokens[static_cast<size_t>(id)], id);

    std::vector<Piece> pieces;
    pieces.reserve(pieceCounts.size());
    std::unordered_map<uint64_t, int64_t> pairCounts;
    // Pieces that contain (or once contained) the pair; may hold repeats and stale entries.
    std::unordered_map<uint64_t, std::vector<uint32_t>> piecesWithPair;
    for (const auto& [text, count] : pieceCounts) {
        Piece piece;
        piece.count = count;
        for (const char c : text) piece.symbols.push_back(static_cast<uint8_t>(c));
        const auto index = static_cast<uint32_t>(pieces.size());
        for (size_t i = 0; i + 1 < piece.symbols.size(); ++i) {
            const uint64_t key = pairKey(piece.symbols[i], piece.symbols[i + 1]);
            pairCounts[key] += count;
            piecesWithPair[key].push_back(index);
        }
        pieces.push_back(std::move(piece));
    }
    pieceCounts.clear();

    // Max-heap on count; equal counts: smaller (left bytes, right bytes) first.
    const auto lowerPriority = [&tokens](const HeapEntry& a, const HeapEntry& b) {
        if (a.count != b.count) return a.count < b.count;
        const std::string& al = tokens[static_cast<size_t>(leftOf(a.pair))];
        const std::string& bl = tokens[static_cast<size_t>(leftOf(b.pair))];
        if (al != bl) return al > bl;
        return tokens[static_cast<size_t>(rightOf(a.pair))] > tokens[static_cast<size_t>(rightOf(b.pair))];
    };
    std::vector<HeapEntry> heap;
    heap.reserve(pairCounts.size());
    for (const auto& [key, count] : pairCounts) heap.push_back({count, key});
    std::make_heap(heap.begin(), heap.end(), lowerPriority);

    // 3. Merge loop.
    const auto targetTokens = static_cast<size_t>(options.vocabSize) - options.specialTokens.size();
    const double mergesWanted = static_cast<double>(targetTokens - 256);
    std::vector<std::pair<int32_t, int32_t>> merges;
    std::vector<uint32_t> visitedAtMerge(pieces.size(), UINT32_MAX);
    std::vector<int32_t> merged;
    std::vector<uint64_t> grownPairs;
    while (tokens.size() < targetTokens && !heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), lowerPriority);
        const HeapEntry top = heap.back();
        heap.pop_back();
        const auto found = pairCounts.find(top.pair);
        const int64_t current = found == pairCounts.end() ? 0 : found->second;
        if (current != top.count) {  // stale: counts changed since the push
            if (current > 0) {
                heap.push_back({current, top.pair});
                std::push_heap(heap.begin(), heap.end(), lowerPriority);
            }
            continue;
        }
        if (top.count < minFrequency) break;  // the best pair is too rare: so is every other

        const int32_t left = leftOf(top.pair), right = rightOf(top.pair);
        std::string bytes = tokens[static_cast<size_t>(left)] + tokens[static_cast<size_t>(right)];
        auto [idIt, isNew] = idOfBytes.emplace(std::move(bytes), static_cast<int32_t>(tokens.size()));
        const int32_t newId = idIt->second;
        if (isNew) tokens.push_back(idIt->first);
        const auto mergeIndex = static_cast<uint32_t>(merges.size());
        merges.emplace_back(left, right);

        // Re-count each piece that holds the pair: remove its old pairs, merge, add the new ones.
        // Only pairs containing newId can grow; they get fresh heap entries below.
        std::vector<uint32_t> holders = std::move(piecesWithPair[top.pair]);
        piecesWithPair.erase(top.pair);
        grownPairs.clear();
        for (const uint32_t index : holders) {
            if (visitedAtMerge[index] == mergeIndex) continue;
            visitedAtMerge[index] = mergeIndex;
            Piece& piece = pieces[index];
            std::vector<int32_t>& s = piece.symbols;
            merged.clear();
            for (size_t i = 0; i < s.size(); ++i) {
                if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
                    merged.push_back(newId);
                    ++i;
                } else {
                    merged.push_back(s[i]);
                }
            }
            if (merged.size() == s.size()) continue;  // stale index entry
            for (size_t i = 0; i + 1 < s.size(); ++i) pairCounts[pairKey(s[i], s[i + 1])] -= piece.count;
            for (size_t i = 0; i + 1 < merged.size(); ++i) {
                const uint64_t key = pairKey(merged[i], merged[i + 1]);
                pairCounts[key] += piece.count;
                if (merged[i] == newId || merged[i + 1] == newId) {
                    piecesWithPair[key].push_back(index);
                    grownPairs.push_back(key);
                }
            }
            s.swap(merged);
        }
        pairCounts.erase(top.pair);
        std::sort(grownPairs.begin(), grownPairs.end());
        grownPairs.erase(std::unique(grownPairs.begin(), grownPairs.end()), grownPairs.end());
        for (const uint64_t key : grownPairs) {
            heap.push_back({pairCounts[key], key});
            std::push_heap(heap.begin(), heap.end(), lowerPriority);
        }
        progress.report(0.1 + 0.9 * static_cast<double>(tokens.size() - 256) / mergesWanted);
    }
    progress.report(1.0);
    return Tokenizer::fromVocabMerges(std::move(tokens), merges, options.specialTokens);
}

}  // namespace spanscope
