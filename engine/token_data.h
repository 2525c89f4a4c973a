// Tokenized training data: a corpus encoded once by `spanscope-cli tokenize`, read by `train`.
//
// File format (.tokens), little-endian:
//   8 bytes  magic "SPTOKENS"
//   u32      format version (1)
//   u32      vocabulary size of the tokenizer that wrote it
//   u32      id of the end-of-text token that separates documents
//   u32      number of documents
//   u64      number of tokens N
//   N × u16  token ids (every id < vocabulary size)
// Files are written atomically; reading checks every field, the length and every id, and names
// the file in each error. Plain host code, no LibTorch.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace spanscope {

class Tokenizer;

struct TokenData {
    std::string path;
    int32_t vocabSize = 0;
    int32_t endOfText = 0;
    int64_t documents = 0;
    std::vector<uint16_t> ids;
    std::string hash;  // fnv1a64 hex of the whole file, for training records

    // Throws InputError "<path>: ..." for a missing, truncated or inconsistent file.
    static TokenData load(const std::string& path);
    void save(const std::string& path) const;
};

// Splits a corpus text into documents at lines holding only "<|endoftext|>" (the corpus
// builder's separator); empty documents are dropped.
std::vector<std::string_view> splitDocuments(std::string_view text);

// Encodes documents with `tokenizer`, each followed by its "<|endoftext|>" token, on `threads`
// threads (order kept). `progress(done, total)` is called on the calling thread.
TokenData tokenizeDocuments(const Tokenizer& tokenizer, const std::vector<std::string_view>& documents,
                            int threads, const std::function<void(size_t, size_t)>& progress = {});

}  // namespace spanscope
