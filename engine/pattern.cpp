#include "engine/pattern.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "engine/errors.h"

namespace spanscope {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

int64_t parsePositive(std::string_view s, std::string_view what, std::string_view item) {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v <= 0)
        throw InputError("pattern item '" + std::string(item) + "': " + std::string(what) +
                         " must be a positive integer, got '" + std::string(s) + "'");
    return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (true) {
        size_t pos = s.find(sep, start);
        out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
        if (pos == std::string_view::npos) break;
        start = pos + 1;
    }
    return out;
}

}  // namespace

const char* attentionKindName(AttentionKind kind) {
    switch (kind) {
        case AttentionKind::Full: return "full";
        case AttentionKind::Window: return "window";
        case AttentionKind::Block: return "block";
        case AttentionKind::SparseK: return "sparsek";
    }
    return "?";
}

SpanMask LayerSpec::mask() const {
    switch (kind) {
        case AttentionKind::Full: return {MaskKind::Full, 0, false};
        case AttentionKind::Window:
        case AttentionKind::SparseK: return {MaskKind::Window, span, false};
        case AttentionKind::Block: return {MaskKind::Block, span, prevBlock};
    }
    return {};
}

bool LayerSpec::allows(int64_t i, int64_t j) const { return mask().allows(i, j); }

int64_t LayerSpec::firstKey(int64_t i) const { return mask().firstKey(i); }

int64_t LayerSpec::keysFor(int64_t i) const { return i - firstKey(i) + 1; }

int64_t LayerSpec::attendedPairs(int64_t n) const {
    if (n <= 0) return 0;
    switch (kind) {
        case AttentionKind::Full: return n * (n + 1) / 2;
        case AttentionKind::Window:
        case AttentionKind::SparseK: {
            // Queries 0..w-1 see i+1 keys, the rest see w (sparsek adds topK selected keys
            // for queries that have that many keys before their window).
            int64_t w = std::min(span, n);
            int64_t pairs = w * (w + 1) / 2 + (n - w) * span;
            if (kind == AttentionKind::SparseK)
                for (int64_t i = span; i < n; ++i) pairs += std::min(topK, i - span + 1);
            return pairs;
        }
        case AttentionKind::Block: {
            int64_t pairs = 0;
            for (int64_t i = 0; i < n; ++i) pairs += keysFor(i);
            return pairs;
        }
    }
    return 0;
}

int64_t LayerSpec::reach() const {
    switch (kind) {
        case AttentionKind::Full: return 0;
        case AttentionKind::Window:
        case AttentionKind::SparseK: return span;
        case AttentionKind::Block: return prevBlock ? 2 * span : span;
    }
    return 0;
}

std::string LayerSpec::text() const {
    switch (kind) {
        case AttentionKind::Full: return "full";
        case AttentionKind::Window: return "window:" + std::to_string(span);
        case AttentionKind::Block: return "block:" + std::to_string(span) + (prevBlock ? "+prev" : "");
        case AttentionKind::SparseK: return "sparsek:" + std::to_string(topK) + "/" + std::to_string(span);
    }
    return "?";
}

bool LayerSpec::operator==(const LayerSpec& o) const {
    return kind == o.kind && span == o.span && prevBlock == o.prevBlock && topK == o.topK;
}

int LayerPattern::boundary() const {
    int l = 0;
    while (l < static_cast<int>(layers.size()) && layers[l].kind == AttentionKind::Full) ++l;
    return l;
}

LayerSpec LayerPattern::sparseSpec() const {
    for (const auto& s : layers)
        if (s.kind != AttentionKind::Full) return s;
    return LayerSpec::full();
}

std::string LayerPattern::text() const {
    std::string out;
    for (size_t i = 0; i < layers.size();) {
        size_t j = i;
        while (j < layers.size() && layers[j] == layers[i]) ++j;
        if (!out.empty()) out += ',';
        out += layers[i].text() + "*" + std::to_string(j - i);
        i = j;
    }
    return out;
}

nlohmann::json LayerPattern::toJson() const {
    auto list = nlohmann::json::array();
    for (const auto& s : layers) {
        nlohmann::json j = {{"kind", attentionKindName(s.kind)}};
        if (s.kind != AttentionKind::Full) j["span"] = s.span;
        if (s.kind == AttentionKind::Block) j["prev_block"] = s.prevBlock;
        if (s.kind == AttentionKind::SparseK) j["top_k"] = s.topK;
        list.push_back(j);
    }
    return list;
}

LayerSpec parseLayerSpec(std::string_view textIn) {
    std::string_view text = trim(textIn);
    std::string item(text);
    size_t colon = text.find(':');
    std::string_view kind = text.substr(0, colon);
    std::string_view arg = colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
    if (kind == "full") {
        if (!arg.empty()) throw InputError("pattern item '" + item + "': full takes no argument");
        return LayerSpec::full();
    }
    if (kind == "window") {
        if (arg.empty()) throw InputError("pattern item '" + item + "': window needs a span, e.g. window:512");
        return LayerSpec::window(parsePositive(arg, "window span", item));
    }
    if (kind == "block") {
        if (arg.empty()) throw InputError("pattern item '" + item + "': block needs a size, e.g. block:1024");
        bool prev = false;
        if (arg.size() > 5 && arg.substr(arg.size() - 5) == "+prev") {
            prev = true;
            arg.remove_suffix(5);
        }
        return LayerSpec::block(parsePositive(arg, "block size", item), prev);
    }
    if (kind == "sparsek") {
        size_t slash = arg.find('/');
        if (arg.empty() || slash == std::string_view::npos)
            throw InputError("pattern item '" + item + "': sparsek needs k/w, e.g. sparsek:64/256");
        return LayerSpec::sparseK(parsePositive(arg.substr(0, slash), "sparsek k", item),
                                  parsePositive(arg.substr(slash + 1), "sparsek window", item));
    }
    throw InputError("pattern item '" + item + "': unknown attention kind '" + std::string(kind) +
                     "' (use full, window:W, block:B[+prev], sparsek:K/W)");
}

LayerPattern masformerPattern(int numLayers, int boundary, const LayerSpec& sparse) {
    if (boundary < 0 || boundary > numLayers)
        throw InputError("MASFormer boundary " + std::to_string(boundary) + " is outside 0.." +
                         std::to_string(numLayers) + " (the model has " + std::to_string(numLayers) + " layers)");
    LayerPattern p;
    p.layers.assign(numLayers, sparse);
    std::fill(p.layers.begin(), p.layers.begin() + boundary, LayerSpec::full());
    return p;
}

LayerPattern parsePattern(std::string_view textIn, int numLayers) {
    std::string_view text = trim(textIn);
    if (text.empty()) throw InputError("pattern is empty (e.g. full*4,window:512*8)");
    if (text.substr(0, 10) == "masformer:") {
        std::string_view rest = text.substr(10);
        size_t comma = rest.find(',');
        if (comma == std::string_view::npos)
            throw InputError("pattern '" + std::string(text) + "': MASFormer form is masformer:L,KIND:SPAN");
        std::string_view l = trim(rest.substr(0, comma));
        int64_t boundary = 0;
        auto [end, ec] = std::from_chars(l.data(), l.data() + l.size(), boundary);
        if (l.empty() || ec != std::errc() || end != l.data() + l.size())
            throw InputError("pattern '" + std::string(text) + "': boundary '" + std::string(l) + "' is not a number");
        LayerSpec sparse = parseLayerSpec(rest.substr(comma + 1));
        return masformerPattern(numLayers, static_cast<int>(boundary), sparse);
    }
    auto items = split(text, ',');
    LayerPattern p;
    bool anyCount = false;
    for (auto raw : items) {
        std::string_view item = trim(raw);
        if (item.empty()) throw InputError("pattern '" + std::string(text) + "': empty item");
        size_t star = item.find('*');
        int64_t count = 1;
        if (star != std::string_view::npos) {
            count = parsePositive(trim(item.substr(star + 1)), "repeat count", item);
            item = item.substr(0, star);
            anyCount = true;
        }
        LayerSpec spec = parseLayerSpec(item);
        if (static_cast<int64_t>(p.layers.size()) + count > 4096)
            throw InputError("pattern '" + std::string(text) + "': too many layers");
        p.layers.insert(p.layers.end(), count, spec);
    }
    if (items.size() == 1 && !anyCount) p.layers.assign(numLayers, p.layers[0]);
    if (static_cast<int>(p.layers.size()) != numLayers)
        throw InputError("pattern '" + std::string(text) + "' has " + std::to_string(p.layers.size()) +
                         " layers but the model has " + std::to_string(numLayers));
    return p;
}

static LayerSpec specFromJson(const nlohmann::json& j, const std::string& where) {
    if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string())
        throw InputError(where + ": expected an object with a \"kind\" string");
    std::string text = j["kind"].get<std::string>();
    auto num = [&](const char* key) -> std::string {
        if (!j.contains(key)) return "";
        if (!j[key].is_number_integer()) throw InputError(where + ": \"" + key + "\" must be an integer");
        return std::to_string(j[key].get<int64_t>());
    };
    if (text == "window") text += ":" + num("span");
    else if (text == "block") {
        text += ":" + num("span");
        if (j.value("prev_block", false)) text += "+prev";
    } else if (text == "sparsek") text += ":" + num("top_k") + "/" + num("span");
    try {
        return parseLayerSpec(text);
    } catch (const InputError& e) {
        throw InputError(where + ": " + e.what());
    }
}

LayerPattern patternFromJson(const nlohmann::json& j, int numLayers) {
    if (j.is_string()) return parsePattern(j.get<std::string>(), numLayers);
    if (j.is_object()) {
        if (!j.contains("boundary") || !j["boundary"].is_number_integer() || !j.contains("sparse"))
            throw InputError("pattern JSON object needs \"boundary\" (integer) and \"sparse\" (spec)");
        return masformerPattern(numLayers, j["boundary"].get<int>(), specFromJson(j["sparse"], "pattern \"sparse\""));
    }
    if (!j.is_array()) throw InputError("pattern JSON must be a list of layer specs or a {boundary, sparse} object");
    LayerPattern p;
    for (size_t i = 0; i < j.size(); ++i) p.layers.push_back(specFromJson(j[i], "pattern layer " + std::to_string(i)));
    if (static_cast<int>(p.layers.size()) != numLayers)
        throw InputError("pattern JSON has " + std::to_string(p.layers.size()) + " layers but the model has " +
                         std::to_string(numLayers));
    return p;
}

}  // namespace spanscope
