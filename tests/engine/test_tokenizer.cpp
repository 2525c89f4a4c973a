// Tests of the byte-level BPE tokenizer: round trips on real documents, offsets, compression,
// tokenizer.json load/save, hand-computed encodings, and rejection of malformed input.
#include "engine/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/atomic_file.h"
#include "engine/bpe_trainer.h"
#include "engine/errors.h"

namespace spanscope {
namespace {

using Json = nlohmann::json;

const std::string kLicenses = "/usr/share/common-licenses/";

std::string tempPath(const std::string& name) {
    return testing::TempDir() + "spanscope_tokenizer_" + std::to_string(getpid()) + "_" + name;
}

// Trained once per process on five licenses; GPL-3 and MPL-2.0 stay held out.
const Tokenizer& licenseTokenizer() {
    static const Tokenizer tokenizer = [] {
        std::vector<std::string> corpus;
        for (const char* name : {"Apache-2.0", "GPL-2", "LGPL-2.1", "Artistic", "GFDL-1.3"}) {
            corpus.push_back(readFile(kLicenses + name));
        }
        BpeTrainerOptions options;
        options.vocabSize = 1000;
        return trainBpe({corpus.begin(), corpus.end()}, options);
    }();
    return tokenizer;
}

const std::vector<std::string> kNonAsciiTexts = {
    "Καλημέρα κόσμε, τι κάνεις;",
    "你好，世界！这是一个测试。",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Emoji 😀🎉👍🏽 and flags 🇬🇷🇯🇵, keycap 1️⃣.",
    "مرحبا بالعالم — שלום עולם",
    "Combining: e\u0301 n\u0303, NBSP:\u00A0x, ideographic space:\u3000y",
    "Control bytes \x01\x02\x7f\ttab\r\nCRLF   trailing spaces   ",
    "",
    " ",
    "'s'S ''ll 123,456.78 __init__ ---===--- \n\n\n\n",
};

// Checks that the offsets are consecutive, cover the text, and match each token's bytes.
void expectOffsetsCoverText(const Tokenizer& tokenizer, const std::string& text, const Encoding& enc) {
    ASSERT_EQ(enc.ids.size(), enc.offsets.size());
    uint32_t expectedBegin = 0;
    for (size_t i = 0; i < enc.ids.size(); ++i) {
        const auto [begin, end] = enc.offsets[i];
        ASSERT_EQ(begin, expectedBegin) << "token " << i;
        ASSERT_LT(begin, end) << "token " << i;
        ASSERT_EQ(text.substr(begin, end - begin), tokenizer.tokenBytes(enc.ids[i])) << "token " << i;
        expectedBegin = end;
    }
    EXPECT_EQ(expectedBegin, text.size());
}

TEST(Tokenizer, HeldOutGpl3RoundTripsByteExactWithCoveringOffsets) {
    const Tokenizer& tokenizer = licenseTokenizer();
    for (const char* name : {"GPL-3", "MPL-2.0", "BSD", "CC0-1.0"}) {
        SCOPED_TRACE(name);
        const std::string text = readFile(kLicenses + name);
        const Encoding enc = tokenizer.encode(text);
        EXPECT_EQ(tokenizer.decode(enc.ids), text);
        expectOffsetsCoverText(tokenizer, text, enc);
    }
}

TEST(Tokenizer, GreekCjkEmojiAndControlTextRoundTripsByteExact) {
    const Tokenizer& tokenizer = licenseTokenizer();
    for (const std::string& text : kNonAsciiTexts) {
        SCOPED_TRACE(text);
        const Encoding enc = tokenizer.encode(text);
        EXPECT_EQ(tokenizer.decode(enc.ids), text);
        expectOffsetsCoverText(tokenizer, text, enc);
    }
}

TEST(Tokenizer, Gpl3CompressesToMoreThan2Point8BytesPerTokenWithVocab1000) {
    const Tokenizer& tokenizer = licenseTokenizer();
    const std::string text = readFile(kLicenses + "GPL-3");
    const size_t tokens = tokenizer.encode(text).ids.size();
    const double ratio = static_cast<double>(text.size()) / static_cast<double>(tokens);
    std::printf("GPL-3: %zu bytes -> %zu tokens, %.2f bytes/token\n", text.size(), tokens, ratio);
    EXPECT_GT(ratio, 2.8);  // measured 2.94 (35149 bytes -> 11942 tokens)
}

TEST(Tokenizer, SpecialTokenTextIsEncodedLiterally) {
    const Tokenizer& tokenizer = licenseTokenizer();
    const std::optional<int32_t> eot = tokenizer.tokenId("<|endoftext|>");
    ASSERT_TRUE(eot.has_value());
    EXPECT_EQ(*eot, tokenizer.vocabSize() - 1);
    const Encoding enc = tokenizer.encode("a<|endoftext|>b");
    EXPECT_GT(enc.ids.size(), 1u);
    for (const int32_t id : enc.ids) EXPECT_NE(id, *eot);
    EXPECT_EQ(tokenizer.decode({*eot}), "<|endoftext|>");
}

TEST(Tokenizer, HalfMegabyteDocumentEncodesInUnderASecond) {
    const Tokenizer& tokenizer = licenseTokenizer();
    const std::string gpl3 = readFile(kLicenses + "GPL-3");
    std::string text;
    while (text.size() < 500 * 1000) text += gpl3;
    const auto start = std::chrono::steady_clock::now();
    const Encoding enc = tokenizer.encode(text);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("encoded %zu bytes into %zu tokens in %.3f s\n", text.size(), enc.ids.size(), seconds);
    EXPECT_LT(seconds, 1.0);
    EXPECT_EQ(tokenizer.decode(enc.ids), text);
}

TEST(Tokenizer, LongSinglePiecesEncodeWithoutQuadraticBlowUp) {
    const Tokenizer& tokenizer = licenseTokenizer();
    const std::string letters(50000, 'e');  // one 50 KB pre-token: O(n^2) merging would take many seconds
    const std::string spaces = "x" + std::string(50000, ' ') + "y";
    const auto start = std::chrono::steady_clock::now();
    for (const std::string& text : {letters, spaces}) {
        const Encoding enc = tokenizer.encode(text);
        EXPECT_EQ(tokenizer.decode(enc.ids), text);
        EXPECT_LT(enc.ids.size(), text.size());
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
}

TEST(Tokenizer, ConcurrentEncodesAgreeWithSequentialOne) {
    const Tokenizer& tokenizer = licenseTokenizer();
    const std::string text = readFile(kLicenses + "GPL-3");
    const Encoding expected = tokenizer.encode(text);
    std::vector<Encoding> results(4);
    std::vector<std::thread> threads;
    for (Encoding& r : results) threads.emplace_back([&] { r = tokenizer.encode(text); });
    for (std::thread& t : threads) t.join();
    for (const Encoding& r : results) EXPECT_EQ(r.ids, expected.ids);
}

TEST(Tokenizer, SaveThenLoadGivesIdenticalEncodings) {
    const Tokenizer& original = licenseTokenizer();
    const std::string path = tempPath("roundtrip.json");
    original.save(path);
    const Tokenizer loaded = Tokenizer::load(path);
    ASSERT_EQ(loaded.vocabSize(), original.vocabSize());
    EXPECT_EQ(loaded.merges(), original.merges());
    for (int32_t id = 0; id < original.vocabSize(); ++id) {
        ASSERT_EQ(loaded.tokenBytes(id), original.tokenBytes(id)) << "id " << id;
    }
    EXPECT_EQ(loaded.tokenId("<|endoftext|>"), original.tokenId("<|endoftext|>"));
    std::vector<std::string> texts = kNonAsciiTexts;
    texts.push_back(readFile(kLicenses + "GPL-3"));
    for (const std::string& text : texts) EXPECT_EQ(loaded.encode(text).ids, original.encode(text).ids);

    const Json saved = Json::parse(readFile(path));
    EXPECT_EQ(saved["version"], "1.0");
    EXPECT_EQ(saved["pre_tokenizer"]["type"], "ByteLevel");
    EXPECT_EQ(saved["decoder"]["type"], "ByteLevel");
    EXPECT_EQ(saved["post_processor"]["type"], "ByteLevel");
    EXPECT_EQ(saved["model"]["type"], "BPE");
    EXPECT_EQ(saved["model"]["vocab"]["\u0120"], 32);  // "Ġ" is the space byte, id 32
    EXPECT_EQ(saved["added_tokens"][0]["content"], "<|endoftext|>");
    EXPECT_EQ(saved["added_tokens"][0]["special"], true);
    std::remove(path.c_str());
}

// A tokenizer.json written by hand: "Ġ" is the space byte, "Ã©" the two bytes of "é".
// Merge ranks: 0 "t h", 1 "th e", 2 "a t", 3 "Ġ c", 4 "Ġc at", 5 "Ã ©".
const char* const kHandWritten = R"({
  "version": "1.0",
  "truncation": null,
  "padding": null,
  "added_tokens": [{"id": 15, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true}],
  "normalizer": null,
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]},
  "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {
    "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
    "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
    "vocab": {"a": 0, "c": 1, "e": 2, "h": 3, "s": 4, "t": 5, "\u0120": 6, "th": 7, "the": 8,
              "at": 9, "\u0120c": 10, "\u0120cat": 11, "\u00c3": 12, "\u00a9": 13, "\u00c3\u00a9": 14,
              "<|endoftext|>": 15},
    "merges": ["t h", "th e", "a t", "\u0120 c", "\u0120c at", "\u00c3 \u00a9"]
  }
})";

Json handWritten() { return Json::parse(kHandWritten); }

Tokenizer loadJson(const Json& j, const std::string& name) {
    const std::string path = tempPath(name);
    writeFileAtomic(path, j.dump());
    try {
        Tokenizer t = Tokenizer::load(path);
        std::remove(path.c_str());
        return t;
    } catch (...) {
        std::remove(path.c_str());
        throw;
    }
}

void expectHandComputedEncoding(const Tokenizer& tokenizer) {
    // "the" -> t h e -> th e -> the.  " cat" -> Ġ c a t -> (a t, rank 2) Ġ c at -> (Ġ c) Ġc at
    // -> Ġcat.  " sat" -> Ġ s a t -> Ġ s at (no merge for Ġ s or s at).  " é" -> Ġ Ã © -> Ġ Ã©.
    const Encoding enc = tokenizer.encode("the cat sat \xC3\xA9");
    EXPECT_EQ(enc.ids, (std::vector<int32_t>{8, 11, 6, 4, 9, 6, 14}));
    const std::vector<std::pair<uint32_t, uint32_t>> offsets = {{0, 3},  {3, 7},   {7, 8},  {8, 9},
                                                                {9, 11}, {11, 12}, {12, 14}};
    EXPECT_EQ(enc.offsets, offsets);
    EXPECT_EQ(tokenizer.decode(enc.ids), "the cat sat \xC3\xA9");
    EXPECT_EQ(tokenizer.vocabSize(), 16);
    EXPECT_EQ(tokenizer.tokenId(std::string("\xC4\xA0") + "cat"), 11);  // "Ġcat"
    EXPECT_EQ(tokenizer.tokenId("<|endoftext|>"), 15);
    EXPECT_EQ(tokenizer.tokenId("dog"), std::nullopt);
    EXPECT_EQ(tokenizer.tokenBytes(14), "\xC3\xA9");
    EXPECT_EQ(tokenizer.decode({15, 6}), "<|endoftext|> ");
}

TEST(TokenizerJson, HandWrittenFileWithStringMergesEncodesToHandComputedIds) {
    expectHandComputedEncoding(loadJson(handWritten(), "strings.json"));
}

TEST(TokenizerJson, HandWrittenFileWithArrayMergesEncodesToHandComputedIds) {
    Json j = handWritten();
    Json merges = Json::array();
    for (const Json& m : j["model"]["merges"]) {
        const std::string s = m.get<std::string>();
        merges.push_back({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
    }
    j["model"]["merges"] = merges;
    j["pre_tokenizer"] = j["pre_tokenizer"]["pretokenizers"][0];  // plain ByteLevel this time
    expectHandComputedEncoding(loadJson(j, "arrays.json"));
}

TEST(TokenizerJson, ByteMissingFromSmallVocabIsRejectedWithItsOffset) {
    const Tokenizer tokenizer = loadJson(handWritten(), "missing_byte.json");
    try {
        tokenizer.encode("the <|endoftext|>");
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("byte at offset 4 has no token"), std::string::npos) << e.what();
    }
}

TEST(Tokenizer, InvalidUtf8InputIsRejectedWithTheByteOffset) {
    try {
        licenseTokenizer().encode("valid text \xE2\x82 then more");
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("byte offset 11"), std::string::npos) << e.what();
    }
}

TEST(Tokenizer, OutOfRangeIdsAreRejected) {
    const Tokenizer& tokenizer = licenseTokenizer();
    EXPECT_THROW(tokenizer.decode({0, tokenizer.vocabSize()}), InputError);
    EXPECT_THROW(tokenizer.decode({-1}), InputError);
    EXPECT_THROW(tokenizer.tokenBytes(tokenizer.vocabSize()), InputError);
}

TEST(Tokenizer, FromVocabMergesRejectsMissingBytesAndMergesWithoutResult) {
    std::vector<std::string> bytes;
    for (int b = 0; b < 256; ++b) bytes.emplace_back(1, static_cast<char>(b));
    EXPECT_THROW(Tokenizer::fromVocabMerges({bytes.begin(), bytes.end() - 1}, {}, {}), InputError);
    EXPECT_THROW(Tokenizer::fromVocabMerges(bytes, {{'a', 'b'}}, {}), InputError);  // no "ab" token
    bytes.push_back("ab");
    const Tokenizer t = Tokenizer::fromVocabMerges(bytes, {{'a', 'b'}}, {"<eos>"});
    EXPECT_EQ(t.encode("abc").ids, (std::vector<int32_t>{256, 'c'}));
    EXPECT_EQ(t.tokenId("<eos>"), 257);
}

TEST(TokenizerJson, MissingFileIsRejected) {
    EXPECT_THROW(Tokenizer::load(tempPath("does_not_exist.json")), InputError);
}

struct MalformedCase {
    std::string name;
    std::function<void(Json&)> mutate;  // applied to the hand-written file; null: not JSON at all
    std::string expectedInMessage;
};

std::ostream& operator<<(std::ostream& os, const MalformedCase& c) {
    return os << c.name << " (message should contain '" << c.expectedInMessage << "')";
}

class MalformedTokenizerJson : public testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedTokenizerJson, IsRejectedWithInputErrorNamingFileAndField) {
    const MalformedCase& c = GetParam();
    const std::string path = tempPath(c.name + ".json");
    if (c.mutate) {
        Json j = handWritten();
        c.mutate(j);
        writeFileAtomic(path, j.dump());
    } else {
        writeFileAtomic(path, "{\"model\": {\"type\": \"BPE\", ");
    }
    try {
        Tokenizer::load(path);
        ADD_FAILURE() << "expected InputError";
    } catch (const InputError& e) {
        const std::string message = e.what();
        EXPECT_EQ(message.rfind(path, 0), 0u) << message;
        EXPECT_NE(message.find(c.expectedInMessage), std::string::npos) << message;
        EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
    std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedTokenizerJson,
    testing::Values(
        MalformedCase{"NotJson", nullptr, "not valid JSON"},
        MalformedCase{"MissingModel", [](Json& j) { j.erase("model"); }, "model: missing"},
        MalformedCase{"UnknownModelType", [](Json& j) { j["model"]["type"] = "WordPiece"; }, "model.type"},
        MalformedCase{"MergeOfUnknownToken", [](Json& j) { j["model"]["merges"].push_back("x y"); },
                      "model.merges[6]: token 'x' is not in model.vocab"},
        MalformedCase{"MergeResultNotInVocab", [](Json& j) { j["model"]["merges"].push_back("s at"); },
                      "model.merges[6]"},
        MalformedCase{"DuplicateVocabId", [](Json& j) { j["model"]["vocab"]["zz"] = 3; },
                      "id 3 is used by both"},
        MalformedCase{"VocabIdGap", [](Json& j) { j["model"]["vocab"].erase("c"); }, "id 1 is missing"},
        MalformedCase{"NegativeVocabId", [](Json& j) { j["model"]["vocab"]["zz"] = -1; }, "model.vocab"},
        MalformedCase{"VocabEntryNotByteLevel", [](Json& j) { j["model"]["vocab"]["\xE4\xB8\xAD"] = 16; },
                      "not a byte-level string"},
        MalformedCase{"AddedTokenIdClashesWithVocab", [](Json& j) { j["added_tokens"][0]["id"] = 3; },
                      "added_tokens[0]: id 3 is used by both"},
        MalformedCase{"VocabIsNotAnObject", [](Json& j) { j["model"]["vocab"] = Json::array(); },
                      "model.vocab"},
        MalformedCase{"MergeOfWrongShape", [](Json& j) { j["model"]["merges"][0] = 5; }, "model.merges[0]"},
        MalformedCase{"UnsupportedPreTokenizer",
                      [](Json& j) {
                          j["pre_tokenizer"] = {{"type", "Whitespace"}};
                      },
                      "pre_tokenizer"},
        MalformedCase{"PrefixSpaceNotSupported",
                      [](Json& j) { j["pre_tokenizer"]["pretokenizers"][0]["add_prefix_space"] = true; },
                      "add_prefix_space"},
        MalformedCase{"UnsupportedNormalizer",
                      [](Json& j) {
                          j["normalizer"] = {{"type", "NFC"}};
                      },
                      "normalizer"},
        MalformedCase{"WrongTypeDeepInside", [](Json& j) { j["added_tokens"][0]["special"] = "yes"; },
                      "unexpected JSON structure"}),
    [](const testing::TestParamInfo<MalformedCase>& info) { return info.param.name; });

}  // namespace
}  // namespace spanscope
