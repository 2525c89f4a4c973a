// Tests of UTF-8 validation, the GPT-2 character classes and pre-tokenizer, and the byte-level
// mapping.
#include "engine/utf8.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace spanscope {
namespace {

std::vector<std::string> pretokens(std::string_view text) {
    std::vector<std::string_view> views;
    splitGpt2Pretokens(text, views);
    return {views.begin(), views.end()};
}

using Pieces = std::vector<std::string>;

TEST(Utf8, AsciiAndEmptyAreValid) {
    EXPECT_EQ(findInvalidUtf8(""), std::nullopt);
    EXPECT_EQ(findInvalidUtf8("plain ASCII text\n\t~"), std::nullopt);
    EXPECT_EQ(findInvalidUtf8(std::string("nul \0 inside", 12)), std::nullopt);
}

TEST(Utf8, MultiByteSequencesOfEveryLengthAreValid) {
    EXPECT_EQ(findInvalidUtf8("caf\xC3\xA9"), std::nullopt);               // é, 2 bytes
    EXPECT_EQ(findInvalidUtf8("\xE4\xB8\xAD\xE6\x96\x87"), std::nullopt);  // 中文, 3 bytes
    EXPECT_EQ(findInvalidUtf8("\xF0\x9F\x98\x80"), std::nullopt);          // 😀, 4 bytes
    EXPECT_EQ(findInvalidUtf8("\xC2\x80\xDF\xBF"), std::nullopt);          // U+0080, U+07FF
    // U+0800, U+D7FF, U+E000, then U+FFFF, U+10000, U+10FFFF
    EXPECT_EQ(findInvalidUtf8("\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80"), std::nullopt);
    EXPECT_EQ(findInvalidUtf8("\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"), std::nullopt);
}

TEST(Utf8, OverlongFormsAreInvalidAtTheirLeadByte) {
    EXPECT_EQ(findInvalidUtf8("ab\xC0\x80"), 2u);           // overlong NUL
    EXPECT_EQ(findInvalidUtf8("\xC1\xBF"), 0u);             // overlong '\x7F'
    EXPECT_EQ(findInvalidUtf8("x\xE0\x80\xAF"), 1u);        // overlong '/' in 3 bytes
    EXPECT_EQ(findInvalidUtf8("xyz\xF0\x80\x80\xAF"), 3u);  // overlong '/' in 4 bytes
}

TEST(Utf8, SurrogatesAreInvalid) {
    EXPECT_EQ(findInvalidUtf8("ok\xED\xA0\x80"), 2u);  // U+D800
    EXPECT_EQ(findInvalidUtf8("\xED\xBF\xBF"), 0u);    // U+DFFF
}

TEST(Utf8, CodePointsAboveU10FFFFAreInvalid) {
    EXPECT_EQ(findInvalidUtf8("\xC3\xA9\xF4\x90\x80\x80"), 2u);  // U+110000
    EXPECT_EQ(findInvalidUtf8("\xF5\x80\x80\x80"), 0u);
    EXPECT_EQ(findInvalidUtf8("a\xFF"), 1u);
}

TEST(Utf8, TruncatedSequencesAreInvalid) {
    EXPECT_EQ(findInvalidUtf8("abc\xE2\x82"), 3u);   // cut by the end of the text
    EXPECT_EQ(findInvalidUtf8("abc\xE2\x82!"), 3u);  // cut by an ASCII byte
    EXPECT_EQ(findInvalidUtf8("\xF0\x9F\x98"), 0u);
    EXPECT_EQ(findInvalidUtf8("\xC3"), 0u);
}

TEST(Utf8, StrayContinuationByteIsInvalid) {
    EXPECT_EQ(findInvalidUtf8("\x80"), 0u);
    EXPECT_EQ(findInvalidUtf8("caf\xC3\xA9\xA9"), 5u);
}

TEST(Utf8, DecodeAndAppendRoundTrip) {
    for (const char32_t cp : {U'A', U'\u00E9', U'\u4E2D', U'\U0001F600', U'\U0010FFFF'}) {
        std::string s;
        appendUtf8(s, cp);
        const auto decoded = decodeUtf8At(s, 0);
        ASSERT_TRUE(decoded.has_value());
        EXPECT_EQ(decoded->codePoint, cp);
        EXPECT_EQ(decoded->length, s.size());
    }
}

TEST(Utf8, CharacterClassesCoverAsciiAndMajorScripts) {
    EXPECT_TRUE(isLetter(U'a'));
    EXPECT_TRUE(isLetter(U'Z'));
    EXPECT_FALSE(isLetter(U'_'));
    EXPECT_TRUE(isLetter(U'\u00E9'));   // é
    EXPECT_TRUE(isLetter(U'\u03BB'));   // λ
    EXPECT_TRUE(isLetter(U'\u0416'));   // Ж
    EXPECT_TRUE(isLetter(U'\u4E2D'));   // 中
    EXPECT_TRUE(isLetter(U'\u3042'));   // あ
    EXPECT_TRUE(isLetter(U'\uD55C'));   // 한
    EXPECT_FALSE(isLetter(U'\u00D7'));  // ×
    EXPECT_FALSE(isLetter(U'\U0001F600'));
    EXPECT_FALSE(isLetter(U'\u094D'));     // Devanagari virama is a mark
    EXPECT_TRUE(isLetter(U'\U00013460'));  // Egyptian hieroglyph, new in Unicode 16.0
    EXPECT_TRUE(isNumber(U'7'));
    EXPECT_TRUE(isNumber(U'\u0663'));  // Arabic-Indic three
    EXPECT_TRUE(isNumber(U'\u00BD'));  // ½
    EXPECT_FALSE(isNumber(U'x'));
    EXPECT_TRUE(isWhitespace(U' '));
    EXPECT_TRUE(isWhitespace(U'\n'));
    EXPECT_TRUE(isWhitespace(U'\u00A0'));
    EXPECT_TRUE(isWhitespace(U'\u3000'));
    EXPECT_FALSE(isWhitespace(U'\u200B'));  // zero width space is not White_Space
}

TEST(Gpt2Pretokenizer, SpaceLeadsTheFollowingWord) {
    EXPECT_EQ(pretokens("Hello world"), (Pieces{"Hello", " world"}));
    EXPECT_EQ(pretokens("hello!!! world?"), (Pieces{"hello", "!!!", " world", "?"}));
}

TEST(Gpt2Pretokenizer, LowercaseContractionsSplitOff) {
    EXPECT_EQ(pretokens("I'm sure they'll've"), (Pieces{"I", "'m", " sure", " they", "'ll", "'ve"}));
    EXPECT_EQ(pretokens("don't"), (Pieces{"don", "'t"}));
    EXPECT_EQ(pretokens("DON'T"), (Pieces{"DON", "'", "T"}));  // the pattern is case-sensitive
    EXPECT_EQ(pretokens("''s"), (Pieces{"''", "s"}));
}

TEST(Gpt2Pretokenizer, NumbersLettersAndPunctuationAreSeparateRuns) {
    EXPECT_EQ(pretokens("$100.50 abc123"), (Pieces{"$", "100", ".", "50", " abc", "123"}));
}

TEST(Gpt2Pretokenizer, WhitespaceRunGivesItsLastSpaceToTheNextWord) {
    EXPECT_EQ(pretokens("a   b"), (Pieces{"a", "  ", " b"}));
    EXPECT_EQ(pretokens("a  \n\nb"), (Pieces{"a", "  \n", "\n", "b"}));
    EXPECT_EQ(pretokens("a\nb"), (Pieces{"a", "\n", "b"}));
    EXPECT_EQ(pretokens("end   "), (Pieces{"end", "   "}));
    EXPECT_EQ(pretokens("  hi"), (Pieces{" ", " hi"}));
    EXPECT_EQ(pretokens(" "), (Pieces{" "}));
}

TEST(Gpt2Pretokenizer, NonAsciiScriptsGroupByClass) {
    // "Καλημέρα κόσμε" / "你好，世界" / ideographic space / emoji
    EXPECT_EQ(pretokens("\xCE\x9A\xCE\xB1\xCE\xBB\xCE\xB7\xCE\xBC\xCE\xAD\xCF\x81\xCE\xB1 "
                        "\xCE\xBA\xCF\x8C\xCF\x83\xCE\xBC\xCE\xB5"),
              (Pieces{"\xCE\x9A\xCE\xB1\xCE\xBB\xCE\xB7\xCE\xBC\xCE\xAD\xCF\x81\xCE\xB1",
                      " \xCE\xBA\xCF\x8C\xCF\x83\xCE\xBC\xCE\xB5"}));
    EXPECT_EQ(pretokens("\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C"),
              (Pieces{"\xE4\xBD\xA0\xE5\xA5\xBD", "\xEF\xBC\x8C", "\xE4\xB8\x96\xE7\x95\x8C"}));
    EXPECT_EQ(pretokens("a\xE3\x80\x80\xE3\x80\x80z"), (Pieces{"a", "\xE3\x80\x80", "\xE3\x80\x80", "z"}));
    EXPECT_EQ(pretokens("ok \xF0\x9F\x98\x80\xF0\x9F\x8E\x89!"),
              (Pieces{"ok", " \xF0\x9F\x98\x80\xF0\x9F\x8E\x89!"}));
}

TEST(Gpt2Pretokenizer, CombiningMarksSplitDevanagariLikeHuggingFace) {
    // "नमस्ते दुनिया": virama and vowel signs are marks, not letters (pieces checked against
    // Hugging Face tokenizers 0.23).
    EXPECT_EQ(pretokens("नमस्ते दुनिया"),
              (Pieces{"नमस", "्", "त", "े", " द", "ु", "न", "ि", "य", "ा"}));
    EXPECT_EQ(pretokens("ⅧⅨ ٣٤ ½"), (Pieces{"ⅧⅨ", " ٣٤", " ½"}));  // Nl, Nd, No are numbers
}

TEST(Gpt2Pretokenizer, PiecesConcatenateToTheInputEvenForInvalidBytes) {
    const std::string text = "x \xFF\xFEy\xC3  z\n";
    std::string joined;
    for (const std::string& p : pretokens(text)) {
        EXPECT_FALSE(p.empty());
        joined += p;
    }
    EXPECT_EQ(joined, text);
}

TEST(Gpt2ByteLevel, MapsBytesLikeGpt2BytesToUnicode) {
    EXPECT_EQ(byteToGpt2Char('A'), U'A');
    EXPECT_EQ(byteToGpt2Char('!'), U'!');
    EXPECT_EQ(byteToGpt2Char(0x00), U'\u0100');
    EXPECT_EQ(byteToGpt2Char('\n'), U'\u010A');  // Ċ
    EXPECT_EQ(byteToGpt2Char(' '), U'\u0120');   // Ġ
    EXPECT_EQ(byteToGpt2Char(0x7F), U'\u0121');
    EXPECT_EQ(byteToGpt2Char(0xA0), U'\u0142');
    EXPECT_EQ(byteToGpt2Char(0xA1), U'\u00A1');
    EXPECT_EQ(byteToGpt2Char(0xAD), U'\u0143');  // the last of the 68 shifted bytes
    EXPECT_EQ(byteToGpt2Char(0xFF), U'\u00FF');
    EXPECT_EQ(bytesToGpt2String(" the\n"), "\xC4\xA0the\xC4\x8A");  // "ĠtheĊ"
}

TEST(Gpt2ByteLevel, AllBytesRoundTripAndForeignCharactersAreRejected) {
    std::string all;
    for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
    const std::string mapped = bytesToGpt2String(all);
    EXPECT_EQ(findInvalidUtf8(mapped), std::nullopt);
    EXPECT_EQ(gpt2StringToBytes(mapped), all);
    EXPECT_EQ(gpt2StringToBytes(" "), std::nullopt);             // a raw space is not in the table
    EXPECT_EQ(gpt2StringToBytes("\xE4\xB8\xAD"), std::nullopt);  // 中
    EXPECT_EQ(gpt2StringToBytes("\xC3"), std::nullopt);          // invalid UTF-8
}

}  // namespace
}  // namespace spanscope
