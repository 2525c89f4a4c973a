// JSON export of analyses and sweeps: schema-versioned, with the full run settings so a result
// can be regenerated from the command line. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "engine/analysis.h"
#include "engine/model_config.h"

namespace spanscope {

constexpr int kJsonSchemaVersion = 1;
extern const char* const kSpanscopeVersion;

struct RunSettings {
    std::string command;        // the command line that produced the result
    std::string modelDir;
    std::string documentPath;
    std::string documentHash;   // fnv1a64 of the document bytes, hex
    int64_t documentBytes = 0;
    std::string device;
    bool includeMaps = false;   // pooled maps are H·P² numbers per layer: off unless asked
};

// 64-bit FNV-1a of bytes, as 16 hex digits (a content fingerprint, not a security hash).
std::string fnv1a64Hex(const std::string& bytes);

nlohmann::json analysisToJson(const AnalysisResult& r, const ModelConfig& config, const RunSettings& s);
nlohmann::json sweepToJson(const std::vector<SweepPoint>& points, const LayerSpec& sparse, const ModelConfig& config,
                           const RunSettings& s, int64_t numTokens);
nlohmann::json costToJson(const LayerPattern& pattern, const CostSummary& cost);

}  // namespace spanscope
