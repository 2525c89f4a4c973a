// Factories of the GUI panels, one per views/view_<panel>.cpp; registry.cpp lists them in makeViews().
#pragma once

#include <memory>

#include "views/view.h"

namespace spanscope {

std::unique_ptr<View> makeDocumentView();
std::unique_ptr<View> makeDistancesView();
std::unique_ptr<View> makeCostView();
std::unique_ptr<View> makeLossView();
std::unique_ptr<View> makeCompareView();
std::unique_ptr<View> makeLayersView();
std::unique_ptr<View> makeAttentionMapView();
std::unique_ptr<View> makeHelpView();

}  // namespace spanscope
