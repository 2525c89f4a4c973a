// Every GUI panel, in menu order. Add a view here and nowhere else.
#include "views/views_list.h"

namespace spanscope {

std::vector<std::unique_ptr<View>> makeViews() {
    std::vector<std::unique_ptr<View>> v;
    v.push_back(makeLayersView());
    v.push_back(makeAttentionMapView());
    v.push_back(makeDocumentView());
    v.push_back(makeLossView());
    v.push_back(makeDistancesView());
    v.push_back(makeCostView());
    v.push_back(makeCompareView());
    v.push_back(makeHelpView());
    return v;
}

}  // namespace spanscope
