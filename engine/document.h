// Documents: the text a model is run over.
//
// loadDocument reads a file and checks it is something spanscope can analyse: it exists, is not a
// directory, is not empty (or only whitespace), is valid UTF-8 (the error names the line and byte),
// and is not larger than a byte limit. Token-count limits are checked after tokenisation with
// checkTokenCount. Errors are InputError naming the file. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/tokenizer.h"

namespace spanscope {

constexpr int64_t kDefaultMaxDocumentBytes = 16ll << 20;  // 16 MiB of text
constexpr int64_t kDefaultMaxTokens = 131072;              // 128k tokens

std::string loadDocument(const std::string& path, int64_t maxBytes = kDefaultMaxDocumentBytes);
// Validates text that did not come from a file (e.g. pasted); `name` labels the error message.
void checkDocumentText(std::string_view text, const std::string& name);
void checkTokenCount(int64_t tokens, int64_t maxTokens, const std::string& name);
// --first-tokens N: study only a document's first N tokens (0: all of them). The check fails
// before any work; keepFirstTokens checks again and cuts ids and offsets together.
void checkFirstTokens(int64_t firstTokens);
void keepFirstTokens(Encoding& encoding, int64_t firstTokens);

}  // namespace spanscope
