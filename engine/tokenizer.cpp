// Byte-level BPE tokenizer: construction, encoding, decoding, tokenizer.json load and save.
//
// [SECTION] construction and lookup tables
// [SECTION] encoding and decoding
// [SECTION] tokenizer.json
#include "engine/tokenizer.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/errors.h"
#include "engine/utf8.h"

namespace spanscope {

namespace {

uint64_t pairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

[[noreturn]] void fail(const std::string& source, const std::string& field, const std::string& what) {
    throw InputError(source + ": " + field + ": " + what);
}

std::string inQuotes(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace

// [SECTION] construction and lookup tables --------------------------------------------------

Tokenizer Tokenizer::fromVocabMerges(std::vector<std::string> tokenBytes,
                                     const std::vector<std::pair<int32_t, int32_t>>& merges,
                                     const std::vector<std::string>& specialTokens) {
    Tokenizer t;
    t.m_tokenBytes = std::move(tokenBytes);
    t.m_tokenStrings.reserve(t.m_tokenBytes.size() + specialTokens.size());
    for (const std::string& bytes : t.m_tokenBytes) t.m_tokenStrings.push_back(bytesToGpt2String(bytes));
    for (const std::string& special : specialTokens) {
        if (special.empty() || findInvalidUtf8(special)) {
            fail("tokenizer", "special token " + inQuotes(special), "must be non-empty valid UTF-8");
        }
        t.m_addedTokens.push_back(AddedToken{static_cast<int32_t>(t.m_tokenBytes.size()), special});
        t.m_tokenBytes.push_back(special);
        t.m_tokenStrings.push_back(special);
    }
    t.m_merges = merges;
    t.finalize("tokenizer");
    for (int b = 0; b < 256; ++b) {
        if (t.m_byteToId[static_cast<size_t>(b)] < 0) {
            fail("tokenizer", "vocab", "no token for the single byte " + std::to_string(b));
        }
    }
    return t;
}

void Tokenizer::finalize(const std::string& source) {
    const auto n = static_cast<int32_t>(m_tokenBytes.size());
    std::vector<bool> isAdded(m_tokenBytes.size(), false);
    for (const AddedToken& added : m_addedTokens) isAdded[static_cast<size_t>(added.id)] = true;

    m_byteToId.fill(-1);
    for (int32_t id = 0; id < n; ++id) {
        const std::string& s = m_tokenStrings[static_cast<size_t>(id)];
        const auto [it, inserted] = m_idByString.emplace(s, id);
        if (!inserted) {
            fail(source, "vocab", inQuotes(s) + " appears at ids " + std::to_string(it->second) +
                                      " and " + std::to_string(id));
        }
        if (isAdded[static_cast<size_t>(id)]) continue;
        const std::string& bytes = m_tokenBytes[static_cast<size_t>(id)];
        if (bytes.empty()) fail(source, "vocab", "token " + std::to_string(id) + " is empty");
        m_idByBytes.emplace(bytes, id);
        if (bytes.size() == 1) m_byteToId[static_cast<uint8_t>(bytes[0])] = id;
    }

    m_mergeByPair.reserve(m_merges.size());
    for (size_t rank = 0; rank < m_merges.size(); ++rank) {
        const auto [left, right] = m_merges[rank];
        const std::string field = "model.merges[" + std::to_string(rank) + "]";
        if (left < 0 || left >= n || right < 0 || right >= n) fail(source, field, "id out of range");
        const std::string& l = m_tokenStrings[static_cast<size_t>(left)];
        const std::string& r = m_tokenStrings[static_cast<size_t>(right)];
        const auto merged = m_idByString.find(l + r);
        if (merged == m_idByString.end()) {
            fail(source, field, inQuotes(l) + " + " + inQuotes(r) + " is not in model.vocab");
        }
        if (m_tokenBytes[static_cast<size_t>(merged->second)] !=
            m_tokenBytes[static_cast<size_t>(left)] + m_tokenBytes[static_cast<size_t>(right)]) {
            fail(source, field, "bytes of " + inQuotes(merged->first) + " are not those of its parts");
        }
        // A repeated pair takes the later rank, as Hugging Face's merge map does.
        m_mergeByPair.insert_or_assign(pairKey(left, right),
                                       MergeTarget{static_cast<int32_t>(rank), merged->second});
    }
}

const Tokenizer::MergeTarget* Tokenizer::findMerge(int32_t left, int32_t right) const {
    const auto it = m_mergeByPair.find(pairKey(left, right));
    return it == m_mergeByPair.end() ? nullptr : &it->second;
}

// [SECTION] encoding and decoding -----------------------------------------------------------

// Reusable buffers for encodeWord: one doubly linked list of symbols over the word's bytes and a
// min-heap of candidate merges.
struct Tokenizer::WordScratch {
    struct Symbol {
        int32_t id;    // -1 once merged into its left neighbour
        int32_t prev;  // index of the previous live symbol, -1 at the start
        int32_t next;  // index of the next live symbol, -1 at the end
    };
    struct Candidate {
        int32_t rank;
        int32_t pos;  // index of the left symbol
        int32_t left, right, merged;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::vector<Symbol> symbols;
    std::vector<Candidate> heap;
};

// Applies merges lowest rank first, leftmost first among equal ranks, until none applies:
// O(L log L) for a piece of L bytes. A candidate is stale once either of its symbols has changed
// (a symbol's token only ever grows, so an unchanged id means an unchanged symbol).
void Tokenizer::encodeWord(std::string_view word, size_t wordOffset, WordScratch& scratch,
                           std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (m_ignoreMerges) {
        const auto whole = m_idByBytes.find(std::string(word));
        if (whole != m_idByBytes.end()) {
            out.push_back(whole->second);
            return;
        }
    }
    auto& symbols = scratch.symbols;
    auto& heap = scratch.heap;
    symbols.clear();
    heap.clear();
    const auto n = static_cast<int32_t>(word.size());
    for (int32_t i = 0; i < n; ++i) {
        const int32_t id = m_byteToId[static_cast<uint8_t>(word[static_cast<size_t>(i)])];
        if (id < 0) {
            throw InputError("text to encode: the byte at offset " +
                             std::to_string(wordOffset + static_cast<size_t>(i)) + " has no token");
        }
        symbols.push_back({id, i - 1, i + 1 < n ? i + 1 : -1});
    }
    const auto pushCandidate = [&](int32_t pos) {
        const int32_t left = symbols[static_cast<size_t>(pos)].id;
        const int32_t right = symbols[static_cast<size_t>(symbols[static_cast<size_t>(pos)].next)].id;
        if (const MergeTarget* m = findMerge(left, right)) {
            heap.push_back({m->rank, pos, left, right, m->id});
            std::push_heap(heap.begin(), heap.end(), std::greater<>());
        }
    };
    for (int32_t i = 0; i + 1 < n; ++i) pushCandidate(i);

    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), std::greater<>());
        const WordScratch::Candidate c = heap.back();
        heap.pop_back();
        auto& a = symbols[static_cast<size_t>(c.pos)];
        if (a.id != c.left || a.next < 0) continue;
        auto& b = symbols[static_cast<size_t>(a.next)];
        if (b.id != c.right) continue;
        a.id = c.merged;
        a.next = b.next;
        if (b.next >= 0) symbols[static_cast<size_t>(b.next)].prev = c.pos;
        b.id = -1;
        if (a.prev >= 0) pushCandidate(a.prev);
        if (a.next >= 0) pushCandidate(c.pos);
    }
    for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
        out.push_back(symbols[static_cast<size_t>(i)].id);
    }
}

Encoding Tokenizer::encode(std::string_view text) const {
    if (text.size() > std::numeric_limits<uint32_t>::max()) {
        throw InputError("text to encode: " + std::to_string(text.size()) +
                         " bytes is more than the 4 GiB limit");
    }
    if (const auto bad = findInvalidUtf8(text)) {
        throw InputError("text to encode: invalid UTF-8 at byte offset " + std::to_string(*bad));
    }
    std::vector<std::string_view> pieces;
    pieces.reserve(text.size() / 4 + 1);
    splitGpt2Pretokens(text, pieces);

    // Per-call cache of short pieces: piece -> (first index, count) of its ids in `ids`.
    constexpr size_t kMaxCachedPiece = 64;
    std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>> cache;
    cache.reserve(pieces.size() / 8 + 16);
    WordScratch scratch;
    Encoding enc;
    std::vector<int32_t>& ids = enc.ids;
    ids.reserve(pieces.size() * 5 / 4 + 1);
    size_t offset = 0;
    for (const std::string_view piece : pieces) {
        const size_t first = ids.size();
        if (piece.size() <= kMaxCachedPiece) {
            const auto hit = cache.find(piece);
            if (hit != cache.end()) {
                for (uint32_t k = 0; k < hit->second.second; ++k) {
                    const int32_t id = ids[hit->second.first + k];
                    ids.push_back(id);
                }
            } else {
                encodeWord(piece, offset, scratch, ids);
                cache.emplace(piece, std::make_pair(static_cast<uint32_t>(first),
                                                    static_cast<uint32_t>(ids.size() - first)));
            }
        } else {
            encodeWord(piece, offset, scratch, ids);
        }
        offset += piece.size();
    }

    enc.offsets.reserve(ids.size());
    uint32_t begin = 0;
    for (const int32_t id : ids) {
        const auto end = begin + static_cast<uint32_t>(m_tokenBytes[static_cast<size_t>(id)].size());
        enc.offsets.emplace_back(begin, end);
        begin = end;
    }
    return enc;
}

const std::string& Tokenizer::checkedBytes(int32_t id) const {
    if (id < 0 || id >= vocabSize()) {
        throw InputError("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                         std::to_string(vocabSize() - 1) + ")");
    }
    return m_tokenBytes[static_cast<size_t>(id)];
}

std::string Tokenizer::tokenBytes(int32_t id) const { return checkedBytes(id); }

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string out;
    for (const int32_t id : ids) out += checkedBytes(id);
    return out;
}

std::optional<int32_t> Tokenizer::tokenId(std::string_view tokenString) const {
    const auto it = m_idByString.find(std::string(tokenString));
    if (it == m_idByString.end()) return std::nullopt;
    return it->second;
}

// [SECTION] tokenizer.json ------------------------------------------------------------------

namespace {

using Json = nlohmann::json;

// Rejects a pre_tokenizer/decoder/post_processor node that is not a plain GPT-2 ByteLevel.
void checkByteLevel(const std::string& path, const std::string& field, const Json& node) {
    if (!node.is_object()) fail(path, field, "must be an object");
    const auto type = node.find("type");
    if (type == node.end() || !type->is_string()) fail(path, field + ".type", "missing");
    if (*type != "ByteLevel") {
        fail(path, field + ".type",
             inQuotes(type->get<std::string>()) + " is not supported (only ByteLevel)");
    }
    const auto prefix = node.find("add_prefix_space");
    if (field.rfind("pre_tokenizer", 0) == 0 && prefix != node.end() && *prefix == true) {
        fail(path, field + ".add_prefix_space", "true is not supported");
    }
    const auto regex = node.find("use_regex");
    if (regex != node.end() && *regex == false) fail(path, field + ".use_regex", "false is not supported");
}

bool isAbsent(const Json& j, const char* key) { return !j.contains(key) || j[key].is_null(); }

// `prefix` by value: a temporary prefix must not look like it could dangle into the result.
const Json& requireField(const std::string& path, const Json& j, std::string_view prefix, const char* key,
                         Json::value_t type) {
    if (!j.contains(key)) fail(path, std::string(prefix) + key, "missing");
    const Json& v = j[key];
    if (v.type() != type) {
        fail(path, std::string(prefix) + key, std::string("must be a JSON ") + Json(type).type_name());
    }
    return v;
}

// Everything around the model must be what encode() implements: no normalizer, the GPT-2
// ByteLevel pre-tokenizer, and a ByteLevel (or no) decoder and post-processor.
void checkPipeline(const std::string& path, const Json& root) {
    if (!isAbsent(root, "normalizer")) fail(path, "normalizer", "only null is supported");
    if (isAbsent(root, "pre_tokenizer")) fail(path, "pre_tokenizer", "missing (ByteLevel is required)");
    const Json& pre = root["pre_tokenizer"];
    if (pre.is_object() && pre.value("type", "") == "Sequence") {
        const Json& members =
            requireField(path, pre, "pre_tokenizer.", "pretokenizers", Json::value_t::array);
        if (members.size() != 1) {
            fail(path, "pre_tokenizer.pretokenizers", "must hold exactly one ByteLevel");
        }
        checkByteLevel(path, "pre_tokenizer.pretokenizers[0]", members[0]);
    } else {
        checkByteLevel(path, "pre_tokenizer", pre);
    }
    for (const char* field : {"decoder", "post_processor"}) {
        if (!isAbsent(root, field)) checkByteLevel(path, field, root[field]);
    }
}

void checkModelOptions(const std::string& path, const Json& model) {
    const Json& type = requireField(path, model, "model.", "type", Json::value_t::string);
    if (type != "BPE") {
        fail(path, "model.type", inQuotes(type.get<std::string>()) + " is not supported (only BPE)");
    }
    if (!isAbsent(model, "dropout") && model["dropout"] != 0) fail(path, "model.dropout", "must be null");
    for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        if (!isAbsent(model, affix) && model[affix] != "") {
            fail(path, std::string("model.") + affix, "must be null or empty");
        }
    }
    if (!isAbsent(model, "ignore_merges") && !model["ignore_merges"].is_boolean()) {
        fail(path, "model.ignore_merges", "must be a boolean");
    }
}

std::vector<AddedToken> readAddedTokens(const std::string& path, const Json& root) {
    std::vector<AddedToken> tokens;
    if (isAbsent(root, "added_tokens")) return tokens;
    const Json& list = requireField(path, root, "", "added_tokens", Json::value_t::array);
    for (size_t i = 0; i < list.size(); ++i) {
        const Json& a = list[i];
        const std::string field = "added_tokens[" + std::to_string(i) + "]";
        if (!a.is_object()) fail(path, field, "must be an object");
        const Json& id = requireField(path, a, field + ".", "id", Json::value_t::number_unsigned);
        if (id.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
            fail(path, field + ".id", "is too large");
        }
        AddedToken added;
        added.id = id.get<int32_t>();
        added.content =
            requireField(path, a, field + ".", "content", Json::value_t::string).get<std::string>();
        added.special = a.value("special", false);
        added.singleWord = a.value("single_word", false);
        added.lstrip = a.value("lstrip", false);
        added.rstrip = a.value("rstrip", false);
        added.normalized = a.value("normalized", false);
        tokens.push_back(std::move(added));
    }
    return tokens;
}

// The string of every id, from model.vocab and added_tokens; ids must run 0..N-1 with no gaps,
// and an id in both must name the same string.
std::vector<std::string> readIdStrings(const std::string& path, const Json& vocab,
                                       const std::vector<AddedToken>& added) {
    const size_t maxIds = vocab.size() + added.size();
    std::vector<std::optional<std::string>> byId;
    const auto place = [&](int64_t id, const std::string& s, const std::string& field) {
        if (id < 0 || static_cast<size_t>(id) >= maxIds) {
            fail(path, field, "id " + std::to_string(id) + " leaves gaps (ids must run 0..N-1)");
        }
        if (byId.size() <= static_cast<size_t>(id)) byId.resize(static_cast<size_t>(id) + 1);
        std::optional<std::string>& slot = byId[static_cast<size_t>(id)];
        if (slot && *slot != s) {
            fail(path, field,
                 "id " + std::to_string(id) + " is used by both " + inQuotes(*slot) + " and " + inQuotes(s));
        }
        slot = s;
    };
    for (const auto& [token, id] : vocab.items()) {
        if (!id.is_number_integer()) fail(path, "model.vocab." + token, "id must be an integer");
        place(id.get<int64_t>(), token, "model.vocab");
    }
    for (size_t i = 0; i < added.size(); ++i) {
        place(added[i].id, added[i].content, "added_tokens[" + std::to_string(i) + "]");
    }
    if (byId.empty()) fail(path, "model.vocab", "is empty");
    std::vector<std::string> strings;
    strings.reserve(byId.size());
    for (size_t id = 0; id < byId.size(); ++id) {
        if (!byId[id]) {
            fail(path, "model.vocab",
                 "id " + std::to_string(id) + " is missing (ids must run 0.." +
                     std::to_string(byId.size() - 1) + " without gaps)");
        }
        strings.push_back(std::move(*byId[id]));
    }
    return strings;
}

// Merges name vocab strings, either as "left right" or as ["left", "right"].
std::vector<std::pair<int32_t, int32_t>> readMerges(const std::string& path, const Json& merges,
                                                    const std::vector<std::string>& strings) {
    std::unordered_map<std::string, int32_t> idOf;
    for (size_t id = 0; id < strings.size(); ++id) idOf.emplace(strings[id], static_cast<int32_t>(id));
    std::vector<std::pair<int32_t, int32_t>> result;
    result.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
        const Json& m = merges[i];
        const std::string field = "model.merges[" + std::to_string(i) + "]";
        std::string parts[2];
        if (m.is_string()) {
            const std::string s = m.get<std::string>();
            const size_t space = s.find(' ');
            if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
                fail(path, field, inQuotes(s) + " is not two tokens separated by one space");
            }
            parts[0] = s.substr(0, space);
            parts[1] = s.substr(space + 1);
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            parts[0] = m[0].get<std::string>();
            parts[1] = m[1].get<std::string>();
        } else {
            fail(path, field, "must be a string \"a b\" or an array [\"a\", \"b\"]");
        }
        int32_t ids[2];
        for (int k = 0; k < 2; ++k) {
            const auto it = idOf.find(parts[k]);
            if (it == idOf.end()) fail(path, field, "token " + inQuotes(parts[k]) + " is not in model.vocab");
            ids[k] = it->second;
        }
        result.emplace_back(ids[0], ids[1]);
    }
    return result;
}

}  // namespace

// A function-try-block, so that a JSON value of an unexpected type anywhere below becomes an
// InputError naming the file rather than a raw nlohmann exception.
Tokenizer Tokenizer::load(const std::string& path) try {
    const Json root = Json::parse(readFile(path));
    if (!root.is_object()) throw InputError(path + ": top level is not a JSON object");
    checkPipeline(path, root);
    const Json& model = requireField(path, root, "", "model", Json::value_t::object);
    checkModelOptions(path, model);

    Tokenizer t;
    t.m_ignoreMerges = model.value("ignore_merges", false);
    t.m_addedTokens = readAddedTokens(path, root);
    const Json& vocab = requireField(path, model, "model.", "vocab", Json::value_t::object);
    t.m_tokenStrings = readIdStrings(path, vocab, t.m_addedTokens);
    std::vector<bool> isAdded(t.m_tokenStrings.size(), false);
    for (const AddedToken& added : t.m_addedTokens) isAdded[static_cast<size_t>(added.id)] = true;
    for (size_t id = 0; id < t.m_tokenStrings.size(); ++id) {
        const std::string& s = t.m_tokenStrings[id];
        std::optional<std::string> bytes = isAdded[id] ? std::optional<std::string>(s) : gpt2StringToBytes(s);
        if (!bytes) fail(path, "model.vocab", inQuotes(s) + " is not a byte-level string");
        t.m_tokenBytes.push_back(std::move(*bytes));
    }
    const Json& merges = requireField(path, model, "model.", "merges", Json::value_t::array);
    t.m_merges = readMerges(path, merges, t.m_tokenStrings);
    t.finalize(path);
    return t;
} catch (const nlohmann::json::parse_error& e) {
    throw InputError(path + ": not valid JSON: " + e.what());
} catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": unexpected JSON structure: " + e.what());
}

void Tokenizer::save(const std::string& path) const {
    using OrderedJson = nlohmann::ordered_json;
    const auto byteLevel = [](bool addPrefixSpace, bool trimOffsets) {
        return OrderedJson{{"type", "ByteLevel"}, {"add_prefix_space", addPrefixSpace},
                           {"trim_offsets", trimOffsets}, {"use_regex", true}};
    };
    OrderedJson added = OrderedJson::array();
    for (const AddedToken& a : m_addedTokens) {
        added.push_back({{"id", a.id}, {"content", a.content}, {"single_word", a.singleWord},
                         {"lstrip", a.lstrip}, {"rstrip", a.rstrip}, {"normalized", a.normalized},
                         {"special", a.special}});
    }
    OrderedJson vocab = OrderedJson::object();
    for (size_t id = 0; id < m_tokenStrings.size(); ++id) vocab[m_tokenStrings[id]] = id;
    // "a b" strings are read by every tokenizers version; pairs only if a token holds a space.
    const auto hasSpace = [this](int32_t id) {
        return m_tokenStrings[static_cast<size_t>(id)].find(' ') != std::string::npos;
    };
    const bool pairForm = std::any_of(m_merges.begin(), m_merges.end(),
                                      [&](const auto& m) { return hasSpace(m.first) || hasSpace(m.second); });
    OrderedJson merges = OrderedJson::array();
    for (const auto& [l, r] : m_merges) {
        const std::string& a = m_tokenStrings[static_cast<size_t>(l)];
        const std::string& b = m_tokenStrings[static_cast<size_t>(r)];
        merges.push_back(pairForm ? OrderedJson::array({a, b}) : OrderedJson(a + " " + b));
    }
    OrderedJson model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                         {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                         {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", m_ignoreMerges},
                         {"vocab", std::move(vocab)}, {"merges", std::move(merges)}};
    OrderedJson root = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
                        {"added_tokens", std::move(added)}, {"normalizer", nullptr},
                        {"pre_tokenizer", byteLevel(false, true)}, {"post_processor", byteLevel(true, false)},
                        {"decoder", byteLevel(true, true)}, {"model", std::move(model)}};
    writeFileAtomic(path, root.dump(2) + "\n");
}

}  // namespace spanscope
