#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "engine/document.h"
#include "engine/errors.h"
#include "tests/test_util.h"

using namespace spanscope;

namespace {

class DocumentTest : public ::testing::Test {
protected:
    std::string write(const std::string& name, const std::string& bytes) {
        std::string p = m_tmp / name;
        std::ofstream(p, std::ios::binary) << bytes;
        return p;
    }
    std::string errorOf(const std::string& path, int64_t maxBytes = kDefaultMaxDocumentBytes) {
        try {
            loadDocument(path, maxBytes);
        } catch (const InputError& e) {
            return e.what();
        }
        return "";
    }
    test::TempDir m_tmp{"spanscope-doc"};
    std::string m_dir = m_tmp.path();
};

}  // namespace

TEST_F(DocumentTest, RealLicenseTextLoadsWhole) {
    std::string text = loadDocument("/usr/share/common-licenses/GPL-3");
    EXPECT_GT(text.size(), 30000u);
    EXPECT_NE(text.find("GNU GENERAL PUBLIC LICENSE"), std::string::npos);
}

TEST_F(DocumentTest, MissingEmptyBinaryAndHugeDocumentsEachGetTheirMessage) {
    EXPECT_NE(errorOf(m_dir + "/nope.txt").find("nope.txt"), std::string::npos);
    EXPECT_NE(errorOf(write("empty.txt", "")).find("empty"), std::string::npos);
    EXPECT_NE(errorOf(write("blank.txt", " \n\n\t ")).find("empty"), std::string::npos);
    std::string bad = errorOf(write("bin.dat", std::string("line one\nline two \xff\xfe\x00 rest", 23)));
    EXPECT_NE(bad.find("not valid UTF-8"), std::string::npos) << bad;
    EXPECT_NE(bad.find("line 2"), std::string::npos) << bad;
    EXPECT_NE(errorOf(write("big.txt", std::string(5000, 'a')), 4096).find("limit"), std::string::npos);
    EXPECT_NE(errorOf(m_dir).find(m_dir), std::string::npos);
}

TEST_F(DocumentTest, TokenLimitsNameTheDocumentAndTheFlag) {
    EXPECT_NO_THROW(checkTokenCount(100, 100, "doc"));
    try {
        checkTokenCount(101, 100, "doc.txt");
        FAIL();
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("--max-tokens"), std::string::npos);
    }
    EXPECT_THROW(checkTokenCount(1, 100, "doc.txt"), InputError);
}
