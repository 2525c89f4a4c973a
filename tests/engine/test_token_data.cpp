// Token files (engine/token_data.h): round trip, document splitting, and rejection of corrupt files.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "engine/errors.h"
#include "engine/token_data.h"
#include "engine/atomic_file.h"
#include "tests/test_util.h"

namespace spanscope {
namespace {

TokenData randomData(uint32_t seed, size_t n, int32_t vocab) {
    std::mt19937 gen(seed);
    TokenData d;
    d.vocabSize = vocab;
    d.endOfText = vocab - 1;
    d.documents = 3;
    d.ids.resize(n);
    for (auto& id : d.ids) id = static_cast<uint16_t>(gen() % static_cast<uint32_t>(vocab));
    return d;
}

void expectError(const std::string& path, const std::string& fragment) {
    try {
        TokenData::load(path);
        FAIL() << "no error for " << path;
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
}

TEST(TokenData, RoundTripKeepsEveryField) {
    test::TempDir dir;
    for (size_t n : {size_t{1}, size_t{7}, size_t{100003}}) {
        TokenData d = randomData(static_cast<uint32_t>(n), n, 8192);
        const std::string path = dir.path() + "/a.tokens";
        d.save(path);
        TokenData r = TokenData::load(path);
        EXPECT_EQ(r.ids, d.ids);
        EXPECT_EQ(r.vocabSize, 8192);
        EXPECT_EQ(r.endOfText, 8191);
        EXPECT_EQ(r.documents, 3);
        EXPECT_EQ(r.hash.size(), 16u);
    }
}

TEST(TokenData, HashChangesWithTheContent) {
    test::TempDir dir;
    TokenData d = randomData(1, 1000, 500);
    d.save(dir.path() + "/a.tokens");
    d.ids[500] = static_cast<uint16_t>((d.ids[500] + 1) % 500);
    d.save(dir.path() + "/b.tokens");
    EXPECT_NE(TokenData::load(dir.path() + "/a.tokens").hash, TokenData::load(dir.path() + "/b.tokens").hash);
}

TEST(TokenData, RejectsCorruptFiles) {
    test::TempDir dir;
    TokenData d = randomData(2, 1000, 500);
    const std::string good = dir.path() + "/good.tokens";
    d.save(good);
    const std::string bytes = readFile(good);

    writeFileAtomic(dir.path() + "/trunc.tokens", bytes.substr(0, bytes.size() - 3));
    expectError(dir.path() + "/trunc.tokens", "truncated");
    writeFileAtomic(dir.path() + "/short.tokens", bytes.substr(0, 10));
    expectError(dir.path() + "/short.tokens", "not a spanscope token file");
    writeFileAtomic(dir.path() + "/text.tokens", "This is a text file, not tokens at all.\n");
    expectError(dir.path() + "/text.tokens", "not a spanscope token file");
    std::string badId = bytes;
    badId[32 + 2 * 10] = static_cast<char>(0xff);
    badId[32 + 2 * 10 + 1] = static_cast<char>(0xff);
    writeFileAtomic(dir.path() + "/badid.tokens", badId);
    expectError(dir.path() + "/badid.tokens", "position 10");
    std::string badVersion = bytes;
    badVersion[8] = 7;
    writeFileAtomic(dir.path() + "/version.tokens", badVersion);
    expectError(dir.path() + "/version.tokens", "version 7");
    expectError(dir.path() + "/missing.tokens", "missing.tokens");
}

TEST(TokenData, SplitDocumentsAtSeparatorLines) {
    auto docs = splitDocuments("first doc\nline two\n<|endoftext|>\nsecond <|endoftext|> inline\n<|endoftext|>\r\n\n"
                               "<|endoftext|>\nthird");
    ASSERT_EQ(docs.size(), 3u);
    EXPECT_EQ(docs[0], "first doc\nline two\n");
    EXPECT_EQ(docs[1], "second <|endoftext|> inline\n");  // only whole lines separate
    EXPECT_EQ(docs[2], "third");
    EXPECT_TRUE(splitDocuments("<|endoftext|>\n \n<|endoftext|>\n").empty());
    EXPECT_EQ(splitDocuments("no separator").size(), 1u);
}

}  // namespace
}  // namespace spanscope
