#include "engine/document.h"

#include <algorithm>

#include "engine/atomic_file.h"
#include "engine/errors.h"
#include "engine/utf8.h"

namespace spanscope {

void checkDocumentText(std::string_view text, const std::string& name) {
    if (std::all_of(text.begin(), text.end(), [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }))
        throw InputError(name + ": document is empty");
    if (auto bad = findInvalidUtf8(text)) {
        int64_t line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(*bad), '\n');
        throw InputError(name + ": not valid UTF-8 text (line " + std::to_string(line) + ", byte " +
                         std::to_string(*bad) + ") — is it a binary file?");
    }
}

std::string loadDocument(const std::string& path, int64_t maxBytes) {
    std::string text = readFile(path, static_cast<size_t>(maxBytes));
    checkDocumentText(text, path);
    return text;
}

void checkFirstTokens(int64_t firstTokens) {
    if (firstTokens < 0) throw InputError("--first-tokens: " + std::to_string(firstTokens) + " is negative");
}

void keepFirstTokens(Encoding& encoding, int64_t firstTokens) {
    checkFirstTokens(firstTokens);
    if (firstTokens == 0 || static_cast<int64_t>(encoding.ids.size()) <= firstTokens) return;
    encoding.ids.resize(static_cast<size_t>(firstTokens));
    encoding.offsets.resize(static_cast<size_t>(firstTokens));
}

void checkTokenCount(int64_t tokens, int64_t maxTokens, const std::string& name) {
    if (tokens < 2) throw InputError(name + ": document has " + std::to_string(tokens) + " token(s); at least 2 are needed");
    if (tokens > maxTokens)
        throw InputError(name + ": document is " + std::to_string(tokens) + " tokens, more than the limit of " +
                         std::to_string(maxTokens) + " (raise it with --max-tokens)");
}

}  // namespace spanscope
