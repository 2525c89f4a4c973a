#include "app/settings.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/errors.h"

namespace spanscope {

std::string defaultSettingsPath() {
    const char* xdg = std::getenv("XDG_CONFIG_HOME");
    const char* home = std::getenv("HOME");
    std::string base = xdg && *xdg ? xdg : std::string(home ? home : "/tmp") + "/.config";
    return base + "/spanscope/settings.json";
}

nlohmann::json uiStateToJson(const UiState& ui) {
    return {{"boundary", ui.boundary},          {"sparse_kind", attentionKindName(ui.sparseKind)},
            {"sparse_span", ui.sparseSpan},     {"sparse_top_k", ui.sparseTopK},
            {"prev_block", ui.prevBlock},
            {"layer", ui.layer},                {"head", ui.head},
            {"query_token", ui.queryToken},     {"tint", static_cast<int>(ui.tint)},
            {"map_log", ui.mapLog},             {"map_overlay", ui.mapOverlay},
            {"map_region", {ui.mapX0, ui.mapX1, ui.mapY0, ui.mapY1}},
            {"distance_cumulative", ui.distanceCumulative},
            {"compare_pattern", ui.comparePattern},
            {"model_dir", ui.modelDir},         {"doc_path", ui.docPath},
            {"device", ui.device},              {"recent_docs", ui.recentDocs},
            {"recent_models", ui.recentModels}};
}

UiState loadUiState(const std::string& path) {
    UiState ui;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return ui;
    nlohmann::json j = nlohmann::json::parse(readFile(path, 1 << 20), nullptr, false);
    if (!j.is_object()) throw InputError(path + ": not a JSON object");
    try {
        ui.boundary = j.value("boundary", ui.boundary);
        std::string kind = j.value("sparse_kind", std::string("window"));
        ui.sparseKind = kind == "block" ? AttentionKind::Block : kind == "sparsek" ? AttentionKind::SparseK : AttentionKind::Window;
        ui.sparseSpan = std::max<int64_t>(1, j.value("sparse_span", ui.sparseSpan));
        ui.sparseTopK = std::max<int64_t>(1, j.value("sparse_top_k", ui.sparseTopK));
        ui.prevBlock = j.value("prev_block", ui.prevBlock);
        ui.head = j.value("head", ui.head);
        ui.tint = static_cast<DocumentTint>(std::clamp(j.value("tint", 0), 0, 4));
        ui.mapLog = j.value("map_log", ui.mapLog);
        ui.mapOverlay = j.value("map_overlay", ui.mapOverlay);
        ui.distanceCumulative = j.value("distance_cumulative", ui.distanceCumulative);
        ui.comparePattern = j.value("compare_pattern", ui.comparePattern);
        ui.modelDir = j.value("model_dir", std::string());
        ui.docPath = j.value("doc_path", std::string());
        ui.device = j.value("device", ui.device);
        ui.recentDocs = j.value("recent_docs", std::vector<std::string>{});
        ui.recentModels = j.value("recent_models", std::vector<std::string>{});
    } catch (const nlohmann::json::exception& e) {
        throw InputError(path + ": " + e.what());
    }
    return ui;
}

void saveUiState(const std::string& path, const UiState& ui) {
    for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1))
        ::mkdir(path.substr(0, pos).c_str(), 0755);  // create missing parents; errors surface on write
    writeFileAtomic(path, uiStateToJson(ui).dump(2) + "\n");
}

}  // namespace spanscope
