// Byte-level BPE tokenizer (GPT-2 style), read from and written to Hugging Face tokenizer.json.
//
// Encoding: the text is split by the GPT-2 pre-tokenizer (utf8.h), each piece's bytes start as
// one token per byte, and merges are applied lowest rank first (leftmost first among equal ranks)
// until none applies, as Hugging Face's BPE model does. Special tokens are never matched in the
// text: "<|endoftext|>" in a document is encoded as ordinary characters.
//
// Ids: 0..vocabSize()-1, dense. A trained tokenizer (bpe_trainer.h) has the 256 byte tokens at
// ids 0..255 (id == byte value), then one token per merge, then the special tokens; a loaded one
// keeps the ids of its file.
//
// Supported tokenizer.json: model.type "BPE" (vocab + merges, merges as "a b" strings or [a, b]
// arrays), pre_tokenizer ByteLevel with use_regex and without add_prefix_space (alone or as the
// only member of a Sequence), decoder/post_processor ByteLevel or null, normalizer null,
// added_tokens. The truncation and padding settings are ignored (whole documents are encoded).
// Anything else is rejected with an InputError naming the file and the field.
//
// Thread safety: a Tokenizer is immutable after construction; all const members may be called
// concurrently from any number of threads.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace spanscope {

// Result of encoding one text. ids and offsets have one entry per token (N tokens).
struct Encoding {
    std::vector<int32_t> ids;
    // offsets[i] = [begin, end) byte range of token i in the input; consecutive
    // (offsets[i].second == offsets[i+1].first) and covering the whole text. A token may begin or
    // end inside a multi-byte character.
    std::vector<std::pair<uint32_t, uint32_t>> offsets;
};

// An entry of tokenizer.json's added_tokens; kept so that save() writes back what load() read.
struct AddedToken {
    int32_t id = 0;
    std::string content;  // raw text of the token, e.g. "<|endoftext|>"
    bool special = true;
    bool singleWord = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = false;
};

class Tokenizer {
public:
    // Reads a Hugging Face tokenizer.json; throws InputError "<path>: <field>: <what is wrong>".
    static Tokenizer load(const std::string& path);

    // Writes an HF-compatible tokenizer.json (version "1.0", ByteLevel pre_tokenizer, decoder
    // and post_processor, BPE model, added_tokens) atomically. Throws InputError on failure.
    void save(const std::string& path) const;

    // Builds a tokenizer from raw token bytes. tokenBytes[id] are the bytes of token `id`; every
    // single byte must occur. merges[r] = (left, right) is the merge of rank r; the token whose
    // bytes are tokenBytes[left] + tokenBytes[right] must exist. specialTokens get the ids after
    // tokenBytes, in order. Throws InputError if these rules are broken.
    static Tokenizer fromVocabMerges(std::vector<std::string> tokenBytes,
                                     const std::vector<std::pair<int32_t, int32_t>>& merges,
                                     const std::vector<std::string>& specialTokens);

    // Encodes valid UTF-8 text (InputError with the byte offset of the first invalid sequence
    // otherwise, or if a byte has no token in a vocabulary that lacks some single bytes).
    Encoding encode(std::string_view text) const;

    // Concatenated bytes of the tokens (special tokens give their content). Throws InputError
    // for an id outside 0..vocabSize()-1. The result need not be valid UTF-8.
    std::string decode(const std::vector<int32_t>& ids) const;

    std::string tokenBytes(int32_t id) const;  // raw bytes of one token; InputError if out of range
    int32_t vocabSize() const { return static_cast<int32_t>(m_tokenBytes.size()); }

    // Id of a vocabulary string in tokenizer.json form (byte-level mapped, e.g. "Ġthe"), or of an
    // added token's content (e.g. "<|endoftext|>"); nullopt if there is none.
    std::optional<int32_t> tokenId(std::string_view tokenString) const;

    const std::vector<std::pair<int32_t, int32_t>>& merges() const { return m_merges; }
    const std::vector<AddedToken>& addedTokens() const { return m_addedTokens; }

private:
    struct MergeTarget {
        int32_t rank;
        int32_t id;
    };

    Tokenizer() = default;
    // Checks consistency and builds the lookup tables from m_tokenBytes, m_tokenStrings, m_merges
    // and m_addedTokens. `source` names the origin in error messages.
    void finalize(const std::string& source);
    struct WordScratch;
    // Appends the ids of one pre-token piece; wordOffset locates it in the text for errors.
    void encodeWord(std::string_view word, size_t wordOffset, WordScratch& scratch,
                    std::vector<int32_t>& out) const;
    const MergeTarget* findMerge(int32_t left, int32_t right) const;
    const std::string& checkedBytes(int32_t id) const;  // InputError if id is out of range

    std::vector<std::string> m_tokenBytes;              // by id: raw bytes
    std::vector<std::string> m_tokenStrings;            // by id: tokenizer.json form
    std::vector<std::pair<int32_t, int32_t>> m_merges;  // by rank
    std::vector<AddedToken> m_addedTokens;
    bool m_ignoreMerges = false;  // HF option: a piece that is itself in the vocab is one token

    std::array<int32_t, 256> m_byteToId{};                    // -1 where the vocab lacks that byte
    std::unordered_map<uint64_t, MergeTarget> m_mergeByPair;  // key: left << 32 | right
    std::unordered_map<std::string, int32_t> m_idByString;
    std::unordered_map<std::string, int32_t> m_idByBytes;  // non-added tokens, for ignoreMerges
};

}  // namespace spanscope
