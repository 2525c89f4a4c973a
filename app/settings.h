// UI settings remembered between runs: a JSON file (default $XDG_CONFIG_HOME/spanscope/settings.json).
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "views/view.h"

namespace spanscope {

std::string defaultSettingsPath();
nlohmann::json uiStateToJson(const UiState& ui);
// Missing file: defaults. Unreadable or malformed: throws InputError (the app then uses defaults).
UiState loadUiState(const std::string& path);
void saveUiState(const std::string& path, const UiState& ui);  // creates the folder, writes atomically

}  // namespace spanscope
