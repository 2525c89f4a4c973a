// UTF-8 validation and decoding, the character classes of the GPT-2 pre-tokenizer, the GPT-2
// pre-tokenizer itself, and the GPT-2 byte-level mapping (bytes <-> printable code points).
//
// Character classes are exact for Unicode 16.0 (utf8.cpp holds tables generated from Hugging Face
// tokenizers 0.23, whose Oniguruma regex engine runs this pattern), so pre-tokenization matches
// Hugging Face's; releases built on an older Unicode differ only for code points added since.
//   isLetter      (\p{L}) general categories Lu Ll Lt Lm Lo. Combining marks (\p{M}) are not
//                 letters, so e.g. Devanagari splits at vowel signs, as in Hugging Face.
//   isNumber      (\p{N}) general categories Nd Nl No.
//   isWhitespace  (\s) the Unicode White_Space property: U+0009..000D, U+0020, U+0085, U+00A0,
//                 U+1680, U+2000..200A, U+2028, U+2029, U+202F, U+205F, U+3000.
//
// Thread safety: every function here is pure and safe to call concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace spanscope {

// Byte offset of the first invalid sequence in `s` (overlong form, UTF-16 surrogate, code point
// above U+10FFFF, sequence truncated by the end or by a non-continuation byte, stray continuation
// byte, or a byte that never occurs in UTF-8), or nullopt if `s` is valid UTF-8.
std::optional<size_t> findInvalidUtf8(std::string_view s);

// One decoded code point and the number of bytes (1..4) it occupies.
struct Utf8Char {
    char32_t codePoint = 0;
    uint32_t length = 0;
};

// Decodes the code point starting at byte `offset` of `s` (offset < s.size()). Returns nullopt if
// the sequence there is invalid in any of the ways findInvalidUtf8 reports.
std::optional<Utf8Char> decodeUtf8At(std::string_view s, size_t offset);

// Appends the UTF-8 form of `codePoint` (<= U+10FFFF, not a surrogate) to `out`.
void appendUtf8(std::string& out, char32_t codePoint);

bool isLetter(char32_t c);      // approximates \p{L}, see above
bool isNumber(char32_t c);      // approximates \p{N}, see above
bool isWhitespace(char32_t c);  // \s: Unicode White_Space

// Splits `text` the way the GPT-2 pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does and appends the pieces, in order, to `out`. The pieces are views into `text`, are never
// empty, and concatenate to `text`. `text` should be valid UTF-8; an invalid byte is treated as a
// one-byte character of the "other" class rather than rejected.
void splitGpt2Pretokens(std::string_view text, std::vector<std::string_view>& out);

// The GPT-2 bytes_to_unicode table: the 188 printable bytes ('!'..'~', U+00A1..U+00AC,
// U+00AE..U+00FF) map to themselves, the other 68 bytes map to U+0100, U+0101, ... in byte order
// (so ' ' -> U+0120 'Ġ', '\n' -> U+010A 'Ċ'). Vocabulary strings in tokenizer.json use this form.
char32_t byteToGpt2Char(uint8_t byte);

// Maps raw bytes to their byte-level string (UTF-8 of the mapped code points).
std::string bytesToGpt2String(std::string_view bytes);

// Inverse of bytesToGpt2String. Returns nullopt if `mapped` is not valid UTF-8 or holds a code
// point that no byte maps to.
std::optional<std::string> gpt2StringToBytes(std::string_view mapped);

}  // namespace spanscope
