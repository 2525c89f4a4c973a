// Trains a GPT-2 style byte-level BPE tokenizer on texts.
//
// The texts are split by the GPT-2 pre-tokenizer (utf8.h) and identical pieces are counted once
// with their frequency. Starting from the 256 single-byte tokens (id == byte value), the most
// frequent adjacent pair of tokens inside a piece is merged into a new token, until the
// vocabulary holds options.vocabSize tokens (special tokens included) or no pair occurs
// options.minFrequency times. The special tokens take the last ids, in the given order.
//
// Ties between equally frequent pairs go to the pair whose (left bytes, right bytes) is
// lexicographically smallest, so the result depends only on the texts and the options.
// A merge whose result already exists (e.g. "ab"+"c" after "a"+"bc") reuses that token's id, as
// Hugging Face's trainer does; it adds a merge but no new token.
//
// Cost: pair counts are kept with an index from each pair to the pieces containing it and are
// updated only for the pieces a merge touches; the best pair comes from a lazy max-heap.
//
// Thread safety: trainBpe keeps all its state on its own stack; calls may run concurrently.
// The progress callback is called on the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer.h"

namespace spanscope {

struct BpeTrainerOptions {
    int32_t vocabSize = 8192;  // total ids, special tokens included; at least 256 + specials
    int64_t minFrequency = 2;  // a pair seen fewer times than this is not merged (values < 1 act as 1)
    std::vector<std::string> specialTokens{"<|endoftext|>"};  // non-empty, valid UTF-8, distinct
    // Called with a fraction in [0, 1] that never decreases, at most a few hundred times, the
    // last time with 1.0. May be empty. To cancel, throw from it: the exception propagates.
    std::function<void(double fraction)> progress;
};

// Throws InputError if a text is not valid UTF-8 (naming the text index and byte offset) or the
// options are impossible. The texts need to stay alive only for the duration of the call.
Tokenizer trainBpe(const std::vector<std::string_view>& texts, const BpeTrainerOptions& options);

}  // namespace spanscope
