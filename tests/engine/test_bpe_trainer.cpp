// Tests of the BPE trainer: hand-computed merges, tie-breaking, vocabulary size, special tokens,
// determinism, progress reports and rejected options.
#include "engine/bpe_trainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <set>

#include "engine/atomic_file.h"
#include "engine/errors.h"

namespace spanscope {
namespace {

const std::string kLicenses = "/usr/share/common-licenses/";

std::vector<std::string> licenseCorpus() {
    std::vector<std::string> corpus;
    for (const char* name : {"Apache-2.0", "GPL-2", "LGPL-2.1", "Artistic", "GFDL-1.3"}) {
        corpus.push_back(readFile(kLicenses + name));
    }
    return corpus;
}

std::vector<std::string_view> views(const std::vector<std::string>& texts) {
    return {texts.begin(), texts.end()};
}

TEST(BpeTrainer, MergesTheMostFrequentPairFirstAndStopsBelowMinFrequency) {
    // "ababab" is one piece: (a,b) occurs 3 times, (b,a) twice -> "ab"; then "ab ab ab" has
    // (ab,ab) twice -> "abab"; then "abab ab" has one pair, below minFrequency 2.
    BpeTrainerOptions options;
    options.vocabSize = 1000;
    const Tokenizer t = trainBpe({"ababab"}, options);
    ASSERT_EQ(t.vocabSize(), 256 + 2 + 1);
    EXPECT_EQ(t.tokenBytes(256), "ab");
    EXPECT_EQ(t.tokenBytes(257), "abab");
    EXPECT_EQ(t.tokenBytes(258), "<|endoftext|>");
    EXPECT_EQ(t.merges(), (std::vector<std::pair<int32_t, int32_t>>{{'a', 'b'}, {256, 256}}));
    EXPECT_EQ(t.encode("ababab").ids, (std::vector<int32_t>{257, 256}));
}

TEST(BpeTrainer, EqualCountsAreBrokenBySmallestPairBytes) {
    // Pieces "ab" and " xy", twice each: (' ','x'), ('a','b'), ('x','y') all count 2.
    // ' ' < 'a' < 'x' picks " x" first; then (" x","y") vs ("a","b"): " x" < "a".
    BpeTrainerOptions options;
    options.vocabSize = 1000;
    options.specialTokens = {};
    const Tokenizer t = trainBpe({"ab xy", "ab xy"}, options);
    ASSERT_EQ(t.vocabSize(), 259);
    EXPECT_EQ(t.tokenBytes(256), " x");
    EXPECT_EQ(t.tokenBytes(257), " xy");
    EXPECT_EQ(t.tokenBytes(258), "ab");
}

TEST(BpeTrainer, TrainingToExhaustionKeepsTokensDistinctAndEveryPieceWhole) {
    // Random a/b pieces merged with minFrequency 1 until every piece is a single token. A merge
    // that rebuilt an existing string would reuse its id (see bpe_trainer.h); either way no two
    // ids may share bytes, which Tokenizer construction would reject.
    std::mt19937 rng(12345);
    std::vector<std::string> texts;
    for (int i = 0; i < 300; ++i) {
        std::string piece;
        const size_t length = 2 + rng() % 9;
        for (size_t k = 0; k < length; ++k) piece.push_back((rng() & 1) ? 'a' : 'b');
        texts.push_back(piece);  // each text is one piece: no spaces
    }
    BpeTrainerOptions options;
    options.vocabSize = 5000;
    options.minFrequency = 1;
    options.specialTokens = {};
    const Tokenizer t = trainBpe(views(texts), options);
    std::set<std::string> distinct;
    for (int32_t id = 0; id < t.vocabSize(); ++id)
        EXPECT_TRUE(distinct.insert(t.tokenBytes(id)).second) << id;
    for (const std::string& text : texts) {
        const Encoding enc = t.encode(text);
        EXPECT_EQ(enc.ids.size(), 1u) << text;  // every training piece became one token
        EXPECT_EQ(t.decode(enc.ids), text);
    }
}

TEST(BpeTrainer, RespectsVocabSizeAndPutsSpecialTokensLast) {
    const std::vector<std::string> corpus = licenseCorpus();
    BpeTrainerOptions options;
    options.vocabSize = 300;
    options.specialTokens = {"<|endoftext|>", "<|pad|>"};
    const Tokenizer t = trainBpe(views(corpus), options);
    ASSERT_EQ(t.vocabSize(), 300);
    EXPECT_EQ(t.tokenId("<|endoftext|>"), 298);
    EXPECT_EQ(t.tokenId("<|pad|>"), 299);
    EXPECT_EQ(t.tokenBytes(299), "<|pad|>");
    ASSERT_EQ(t.addedTokens().size(), 2u);
    EXPECT_TRUE(t.addedTokens()[1].special);
    for (int b = 0; b < 256; ++b) EXPECT_EQ(t.tokenBytes(b), std::string(1, static_cast<char>(b)));
}

TEST(BpeTrainer, TwoRunsOnTheSameTextsAreIdentical) {
    const std::vector<std::string> corpus = licenseCorpus();
    BpeTrainerOptions options;
    options.vocabSize = 1000;
    const auto start = std::chrono::steady_clock::now();
    const Tokenizer a = trainBpe(views(corpus), options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    size_t bytes = 0;
    for (const std::string& text : corpus) bytes += text.size();
    std::printf("trained vocab 1000 on %zu bytes in %.3f s\n", bytes, seconds);
    const Tokenizer b = trainBpe(views(corpus), options);
    ASSERT_EQ(a.vocabSize(), 1000);
    ASSERT_EQ(a.vocabSize(), b.vocabSize());
    EXPECT_EQ(a.merges(), b.merges());
    for (int32_t id = 0; id < a.vocabSize(); ++id)
        ASSERT_EQ(a.tokenBytes(id), b.tokenBytes(id)) << "id " << id;
}

TEST(BpeTrainer, ProgressRisesMonotonicallyToOne) {
    BpeTrainerOptions options;
    options.vocabSize = 400;
    std::vector<double> reports;
    options.progress = [&](double f) { reports.push_back(f); };
    const std::vector<std::string> corpus = licenseCorpus();
    trainBpe(views(corpus), options);
    ASSERT_GE(reports.size(), 10u);
    EXPECT_TRUE(std::is_sorted(reports.begin(), reports.end()));
    EXPECT_GE(reports.front(), 0.0);
    EXPECT_EQ(reports.back(), 1.0);
    EXPECT_LE(reports.size(), 201u);
}

TEST(BpeTrainer, ImpossibleOptionsAndInvalidTextAreRejected) {
    BpeTrainerOptions small;
    small.vocabSize = 256;  // no room for "<|endoftext|>"
    EXPECT_THROW(trainBpe({"abc"}, small), InputError);
    BpeTrainerOptions duplicate;
    duplicate.specialTokens = {"<s>", "<s>"};
    EXPECT_THROW(trainBpe({"abc"}, duplicate), InputError);
    BpeTrainerOptions empty;
    empty.specialTokens = {""};
    EXPECT_THROW(trainBpe({"abc"}, empty), InputError);
    try {
        trainBpe({"fine", "bad \xC0\x80"}, BpeTrainerOptions{});
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("text 1: invalid UTF-8 at byte offset 4"), std::string::npos)
            << e.what();
    }
}

TEST(BpeTrainer, NoTextsGiveTheByteVocabularyAndSpecials) {
    const Tokenizer t = trainBpe({}, BpeTrainerOptions{});
    EXPECT_EQ(t.vocabSize(), 257);
    EXPECT_EQ(t.decode(t.encode("any text at all").ids), "any text at all");
}

}  // namespace
}  // namespace spanscope
