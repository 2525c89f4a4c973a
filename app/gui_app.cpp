#include "app/gui_app.h"

#define GLFW_INCLUDE_NONE
#include <GL/gl.h>
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <thread>

#include "app/gui_script.h"
#include "app/png_writer.h"
#include "app/settings.h"
#include "engine/atomic_file.h"
#include "engine/errors.h"

namespace spanscope {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kDebounceSeconds = 0.12;  // coalesce a drag into one request once it pauses

bool isDirectory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void pushRecent(std::vector<std::string>& list, const std::string& path) {
    list.erase(std::remove(list.begin(), list.end(), path), list.end());
    list.insert(list.begin(), path);
    if (list.size() > 8) list.resize(8);
}

void loadFonts(float scale) {
    ImGuiIO& io = ImGui::GetIO();
    const char* font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    struct stat st {};
    if (::stat(font, &st) != 0) return;  // ImGui's built-in font then
    static const ImWchar ranges[] = {0x0020, 0x024F, 0x0370, 0x03FF, 0x0400, 0x04FF, 0x2000, 0x206F, 0x2190, 0x21FF, 0};
    io.Fonts->AddFontFromFileTTF(font, std::round(15.0f * scale), nullptr, ranges);
}

}  // namespace

int GuiApp::computeThreads() {
    // SPANSCOPE_COMPUTE_THREADS overrides (benchmarks compare settings with it).
    if (const char* v = std::getenv("SPANSCOPE_COMPUTE_THREADS"); v && std::atoi(v) > 0) return std::atoi(v);
    // Every core: while the engine works the UI redraws only every kBusyFrameMs (or on input), so
    // it needs little CPU then (bench/RESULTS_GUI.md measured both settings).
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

GuiApp::GuiApp(GuiOptions options) : m_options(std::move(options)) {
    if (m_options.settingsPath.empty()) m_options.settingsPath = defaultSettingsPath();
    loadSettings();
    if (!m_options.device.empty()) m_ui.device = m_options.device;
    m_actions.openModel = [this](const std::string& p) { openModel(p); };
    m_actions.openDocument = [this](const std::string& p) { openDocument(p); };
    m_actions.runSweep = [this] { runSweep(); };
    m_actions.runCompare = [this](const std::string& p) { runCompare(p); };
    m_views = makeViews();
}

GuiApp::~GuiApp() {
    m_runner.setPublishHook(nullptr);  // no wake-ups once GLFW is gone
    m_compareRunner.setPublishHook(nullptr);
    if (!m_window) return;
    ImGui_ImplOpenGL3_Shutdown();
    ImGui_ImplGlfw_Shutdown();
    ImGui::DestroyContext();
    glfwDestroyWindow(m_window);
    glfwTerminate();
}

bool GuiApp::init(std::string& error) {
    glfwSetErrorCallback([](int, const char*) {});
    if (!glfwInit()) {
        error = "cannot open a window (no display: DISPLAY/WAYLAND_DISPLAY unset or unreachable)";
        return false;
    }
    glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
    glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 0);
    m_window = glfwCreateWindow(m_options.width, m_options.height, "spanscope", nullptr, nullptr);
    if (!m_window) {
        glfwTerminate();
        error = "cannot create an OpenGL 3 window on this display";
        return false;
    }
    glfwMakeContextCurrent(m_window);
    // A new snapshot wakes the event loop, which redraws at a low rate while the engine works.
    m_runner.setPublishHook([] { glfwPostEmptyEvent(); });
    m_compareRunner.setPublishHook([] { glfwPostEmptyEvent(); });
    glfwSwapInterval(m_options.scriptPath.empty() ? 1 : 0);
    glfwSetWindowUserPointer(m_window, this);
    glfwSetDropCallback(m_window, [](GLFWwindow* w, int count, const char** paths) {
        std::vector<std::string> list(paths, paths + count);
        static_cast<GuiApp*>(glfwGetWindowUserPointer(w))->dropFiles(list);
    });
    IMGUI_CHECKVERSION();
    ImGui::CreateContext();
    static std::string iniPath;  // ImGui keeps the pointer
    iniPath = m_options.settingsPath + ".imgui.ini";
    ImGui::GetIO().IniFilename = iniPath.c_str();
    float sx = 1, sy = 1;
    glfwGetWindowContentScale(m_window, &sx, &sy);
    loadFonts(std::max(1.0f, sx));
    ImGui::StyleColorsDark();
    ImGui::GetStyle().ScaleAllSizes(std::max(1.0f, sx));
    ImGui_ImplGlfw_InitForOpenGL(m_window, true);
    ImGui_ImplOpenGL3_Init("#version 130");
    if (!m_options.scriptPath.empty()) {
        m_script = std::make_unique<GuiScript>(m_options.scriptPath);
        ImGui::GetIO().IniFilename = nullptr;  // scripted sessions start from the default layout
    }
    if (!m_options.modelDir.empty()) openModel(m_options.modelDir);
    else if (!m_ui.modelDir.empty() && !m_script) openModel(m_ui.modelDir);
    if (!m_options.docPath.empty()) openDocument(m_options.docPath);
    else if (!m_ui.docPath.empty() && !m_script) openDocument(m_ui.docPath);
    return true;
}

void GuiApp::openModel(const std::string& dir) {
    m_ui.modelDir = dir;
    pushRecent(m_ui.recentModels, dir);
    m_runner.loadModel(dir, m_ui.device);
    m_compareRunner.loadModel(dir, m_ui.device);
    m_compareSubmitted.clear();
}

void GuiApp::openDocument(const std::string& path) {
    m_ui.docPath = path;
    pushRecent(m_ui.recentDocs, path);
    m_ui.queryToken = -1;
    m_ui.mapX0 = m_ui.mapY0 = 0;
    m_ui.mapX1 = m_ui.mapY1 = 1;
    m_runner.loadDocument(path);
    m_compareRunner.loadDocument(path);
    m_compareSubmitted.clear();
}

void GuiApp::runSweep() { m_runner.sweep(m_ui.sparseSpec()); }

void GuiApp::runCompare(const std::string& pattern) {
    auto snap = m_runner.latest();
    if (!snap->model) return;
    AnalysisRequest r;
    r.pattern = parsePattern(pattern, static_cast<int>(snap->model->config.numLayers));
    r.poolSize = 64;
    m_compareRunner.analyze(r);
    m_compareSubmitted = pattern;
}

void GuiApp::dropFiles(const std::vector<std::string>& paths) {
    for (const auto& p : paths) {
        if (isDirectory(p)) openModel(p);
        else openDocument(p);
    }
}

bool GuiApp::settled() const {
    auto s = m_runner.latest();
    return m_runner.idle() && !s->busy && m_compareRunner.idle() && m_submitted == m_pending && !exporting();
}

void GuiApp::focusView(const std::string& name) {
    for (auto& v : m_views)
        if (v->name() == name) {
            v->open = true;
            ImGui::SetWindowFocus(v->name());
        }
}

int GuiApp::run() {
    auto lastFrame = Clock::now();
    while (!glfwWindowShouldClose(m_window) && !m_quit) {
        const bool engineBusy = !m_runner.idle() || !m_compareRunner.idle() || m_snap != m_runner.latest();
        if (engineBusy) {
            // While the engine works, redraw its progress at most every kBusyFrameMs unless input
            // arrives (which wakes the wait at once): on a small machine the cores go to the engine
            // instead of redrawing an unchanged screen (software GL costs a core at full rate).
            const double waited = std::chrono::duration<double, std::milli>(Clock::now() - lastFrame).count();
            if (waited < kBusyFrameMs) glfwWaitEventsTimeout((kBusyFrameMs - waited) / 1000.0);
            else glfwPollEvents();
        } else if (m_script) {
            glfwPollEvents();
        } else {
            glfwWaitEventsTimeout(0.1);  // idle: sleep until input or a short tick
        }
        // Frame time: the work of one frame (events, UI, render, swap), not the wait for events.
        const auto t0 = lastFrame = Clock::now();
        frame();
        m_frameMs.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    saveSettings();
    if (!m_options.frameLogPath.empty()) {
        std::string csv = "frame,ms\n";
        for (size_t i = 0; i < m_frameMs.size(); ++i) csv += std::to_string(i) + "," + std::to_string(m_frameMs[i]) + "\n";
        writeFileAtomic(m_options.frameLogPath, csv);
    }
    return m_exitCode;
}

namespace {

// A model trained with SparseK layers above l full ones opens with that pattern (the SparseK
// controls set to its k and window), unless the UI already asks for SparseK (saved settings).
void adoptTrainedSparseK(UiState& ui, const ModelConfig& c) {
    if (c.trainedPattern.empty() || ui.sparseKind == AttentionKind::SparseK) return;
    LayerPattern p;
    try {
        p = parsePattern(c.trainedPattern, static_cast<int>(c.numLayers));
    } catch (const InputError&) {
        return;
    }
    size_t l = 0;
    while (l < p.layers.size() && p.layers[l].kind == AttentionKind::Full) ++l;
    if (l == p.layers.size() || p.layers[l].kind != AttentionKind::SparseK) return;
    for (size_t i = l + 1; i < p.layers.size(); ++i)
        if (!(p.layers[i] == p.layers[l])) return;
    ui.boundary = static_cast<int>(l);
    ui.sparseKind = AttentionKind::SparseK;
    ui.sparseSpan = p.layers[l].span;
    ui.sparseTopK = p.layers[l].topK;
}

}  // namespace

void GuiApp::frame() {
    m_snap = m_runner.latest();
    const Snapshot& snap = *m_snap;
    if (snap.model && snap.model.get() != m_seenModel) {
        m_seenModel = snap.model.get();
        adoptTrainedSparseK(m_ui, snap.model->config);
    }
    if (snap.model) {
        const int L = static_cast<int>(snap.model->config.numLayers);
        m_ui.boundary = std::clamp(m_ui.boundary, 0, L);
        m_ui.layer = std::clamp(m_ui.layer, 0, L - 1);
        if (m_ui.head >= snap.model->config.numHeads) m_ui.head = -1;
    }
    ImGui_ImplOpenGL3_NewFrame();
    ImGui_ImplGlfw_NewFrame();
    ImGui::NewFrame();
    handleShortcuts(snap);
    drawMenuBar();
    int w = 0, h = 0;
    glfwGetWindowSize(m_window, &w, &h);
    auto compareSnap = m_compareRunner.latest();
    ViewContext ctx{snap, m_ui, m_actions,
                    compareSnap->analysis && !m_compareSubmitted.empty() ? compareSnap->analysis : nullptr};
    for (auto& v : m_views) v->draw(ctx, static_cast<float>(w), static_cast<float>(h) - 26.0f);
    drawErrorBanner(snap);
    drawOpenDialog();
    drawExportDialog();
    pollExport();
    drawStatusBar(snap);
    submitAnalysis(snap);
    if (m_script) m_script->step(*this);
    ImGui::Render();
    int fw = 0, fh = 0;
    glfwGetFramebufferSize(m_window, &fw, &fh);
    glViewport(0, 0, fw, fh);
    // The clear colour is the window background (as blended over the old desktop colour): views
    // that overlap no other window skip their own background fill (View::draw).
    const ImVec4 bg = ImGui::GetStyle().Colors[ImGuiCol_WindowBg];
    auto over = [&bg](float under, float c) { return c * bg.w + under * (1.0f - bg.w); };
    glClearColor(over(0.08f, bg.x), over(0.08f, bg.y), over(0.10f, bg.z), 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
    if (!m_screenshotPath.empty()) {
        saveScreenshot(m_screenshotPath);
        m_screenshotPath.clear();
    }
    glfwSwapBuffers(m_window);
}

// Declarative requests: what the UI shows determines what the engine computes.
void GuiApp::submitAnalysis(const Snapshot& snap) {
    if (!snap.model || !snap.document || snap.document->tokens.size() < 2) return;
    const int L = static_cast<int>(snap.model->config.numLayers);
    const int64_t T = static_cast<int64_t>(snap.document->tokens.size());
    AnalysisRequest r;
    r.pattern = m_ui.pattern(L);
    r.poolSize = 256;
    if (m_ui.queryToken >= 0) r.queryRows = {std::min(m_ui.queryToken, T - 1)};
    const bool zoomed = m_ui.mapX0 > 0 || m_ui.mapY0 > 0 || m_ui.mapX1 < 1 || m_ui.mapY1 < 1;
    if (zoomed) {
        auto lo = [T](float f) { return std::clamp<int64_t>(static_cast<int64_t>(std::floor(f * T)), 0, T - 1); };
        r.mapQ0 = lo(m_ui.mapY0);
        r.mapQ1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(m_ui.mapY1 * T)), r.mapQ0 + 1, T);
        r.mapK0 = lo(m_ui.mapX0);
        r.mapK1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(m_ui.mapX1 * T)), r.mapK0 + 1, T);
    }
    const std::string key = snap.model->dir + "|" + snap.model->device + "|" + snap.document->hash;
    if (r != m_pending) {
        m_pending = r;
        m_pendingSince = Clock::now();
    }
    // An idle worker starts at once; a busy one is cancelled only once the request has been
    // steady for the debounce time (a drag does not restart it every frame).
    const bool due = m_runner.idle() ||
                     std::chrono::duration<double>(Clock::now() - m_pendingSince).count() >= kDebounceSeconds;
    if ((m_pending != m_submitted && due) || key != m_submittedKey) {
        m_runner.analyze(m_pending);
        m_submitted = m_pending;
        m_submittedKey = key;
    }
}

void GuiApp::drawMenuBar() {
    if (!ImGui::BeginMainMenuBar()) return;
    if (ImGui::BeginMenu("File")) {
        if (ImGui::MenuItem("Open document...", "Ctrl+O")) m_openDialog = 1;
        if (ImGui::MenuItem("Open model...", "Ctrl+M")) m_openDialog = 2;
        if (ImGui::MenuItem("Export view figures...", "Ctrl+E", false, m_snap && m_snap->analysis && !exporting()))
            m_exportDialog = true;
        if (ImGui::BeginMenu("Recent documents", !m_ui.recentDocs.empty())) {
            for (const auto& p : std::vector<std::string>(m_ui.recentDocs))
                if (ImGui::MenuItem(p.c_str())) openDocument(p);
            ImGui::EndMenu();
        }
        if (ImGui::BeginMenu("Recent models", !m_ui.recentModels.empty())) {
            for (const auto& p : std::vector<std::string>(m_ui.recentModels))
                if (ImGui::MenuItem(p.c_str())) openModel(p);
            ImGui::EndMenu();
        }
        ImGui::Separator();
        if (ImGui::MenuItem("Quit", "Ctrl+Q")) quit(0);
        ImGui::EndMenu();
    }
    if (ImGui::BeginMenu("View")) {
        for (auto& v : m_views) ImGui::MenuItem(v->name(), nullptr, &v->open);
        ImGui::EndMenu();
    }
    if (ImGui::BeginMenu("Analysis")) {
        if (ImGui::MenuItem("Boundary sweep", "S")) runSweep();
        if (ImGui::MenuItem("Cancel", nullptr, false, m_runner.latest()->busy)) m_runner.cancel();
        ImGui::EndMenu();
    }
    if (ImGui::MenuItem("Help")) focusView("Help");
    ImGui::EndMainMenuBar();
}

void GuiApp::drawOpenDialog() {
    if (m_openDialog) {
        ImGui::OpenPopup(m_openDialog == 1 ? "Open document" : "Open model folder");
        m_dialogPath = m_openDialog == 1 ? m_ui.docPath : m_ui.modelDir;
        m_openDialog = 0;
    }
    for (int kind = 1; kind <= 2; ++kind) {
        const char* title = kind == 1 ? "Open document" : "Open model folder";
        if (!ImGui::BeginPopupModal(title, nullptr, ImGuiWindowFlags_AlwaysAutoResize)) continue;
        ImGui::Text(kind == 1 ? "Path of a UTF-8 text file:" : "Folder with config.json, model.safetensors, tokenizer.json:");
        ImGui::SetNextItemWidth(560);
        if (ImGui::IsWindowAppearing()) ImGui::SetKeyboardFocusHere();
        bool ok = ImGui::InputText("##path", &m_dialogPath, ImGuiInputTextFlags_EnterReturnsTrue);
        const auto& recent = kind == 1 ? m_ui.recentDocs : m_ui.recentModels;
        for (const auto& p : recent)
            if (ImGui::Selectable(p.c_str())) m_dialogPath = p;
        ok |= ImGui::Button("Open");
        ImGui::SameLine();
        if (ImGui::Button("Cancel") || ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape))) ImGui::CloseCurrentPopup();
        if (ok && !m_dialogPath.empty()) {
            if (kind == 1) openDocument(m_dialogPath);
            else openModel(m_dialogPath);
            ImGui::CloseCurrentPopup();
        }
        ImGui::EndPopup();
    }
}

void GuiApp::drawErrorBanner(const Snapshot& snap) {
    if (snap.error.empty() || snap.error == m_dismissedError) return;
    const ImGuiViewport* vp = ImGui::GetMainViewport();
    ImGui::SetNextWindowPos(ImVec2(vp->Pos.x + vp->Size.x * 0.5f, vp->Pos.y + 40), ImGuiCond_Always, ImVec2(0.5f, 0));
    ImGui::SetNextWindowBgAlpha(0.95f);
    ImGui::PushStyleColor(ImGuiCol_WindowBg, IM_COL32(110, 30, 30, 255));
    if (ImGui::Begin("##error", nullptr, ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_AlwaysAutoResize |
                                             ImGuiWindowFlags_NoSavedSettings)) {
        ImGui::TextUnformatted(snap.error.c_str());
        ImGui::SameLine();
        if (ImGui::SmallButton("dismiss")) m_dismissedError = snap.error;
    }
    ImGui::End();
    ImGui::PopStyleColor();
}

void GuiApp::drawStatusBar(const Snapshot& snap) {
    const ImGuiViewport* vp = ImGui::GetMainViewport();
    const float h = ImGui::GetFrameHeight() + 6;
    ImGui::SetNextWindowPos(ImVec2(vp->Pos.x, vp->Pos.y + vp->Size.y - h));
    ImGui::SetNextWindowSize(ImVec2(vp->Size.x, h));
    ImGui::Begin("##status", nullptr, ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoSavedSettings |
                                           ImGuiWindowFlags_NoFocusOnAppearing | ImGuiWindowFlags_NoBringToFrontOnFocus);
    ImGui::Text("device %s", snap.model ? snap.model->device.c_str() : m_ui.device.c_str());
    ImGui::SameLine(0, 24);
    if (snap.model)
        ImGui::Text("model %s (%lld layers)", snap.model->dir.c_str(), static_cast<long long>(snap.model->config.numLayers));
    else ImGui::TextDisabled("no model");
    ImGui::SameLine(0, 24);
    if (snap.document) ImGui::Text("%s, %zu tokens", snap.document->path.c_str(), snap.document->tokens.size());
    else ImGui::TextDisabled("no document");
    ImGui::SameLine(0, 24);
    if (snap.busy) {
        ImGui::ProgressBar(static_cast<float>(snap.progress), ImVec2(160, 0), snap.task.c_str());
    } else if (snap.analysis) {
        ImGui::Text("analysis %.2f s", snap.analysis->seconds);
    }
    if (!snap.error.empty()) {
        ImGui::SameLine(0, 24);
        ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.4f, 1.0f), "error: %s", snap.error.c_str());
    }
    drawExportStatus();
    ImGui::SameLine(0, 24);
    // The work of the last frames (ImGui's frame rate would count the idle and busy waits too).
    double recent = 0;
    const size_t n = std::min<size_t>(m_frameMs.size(), 30);
    for (size_t i = m_frameMs.size() - n; i < m_frameMs.size(); ++i) recent += m_frameMs[i];
    ImGui::TextDisabled("%.1f ms/frame", n ? recent / static_cast<double>(n) : 0.0);
    ImGui::End();
}

void GuiApp::handleShortcuts(const Snapshot& snap) {
    ImGuiIO& io = ImGui::GetIO();
    if (io.WantTextInput) return;
    const bool ctrl = io.KeyCtrl;
    const int L = snap.model ? static_cast<int>(snap.model->config.numLayers) : 0;
    if (ctrl && ImGui::IsKeyPressed(GLFW_KEY_O)) m_openDialog = 1;
    if (ctrl && ImGui::IsKeyPressed(GLFW_KEY_M)) m_openDialog = 2;
    if (ctrl && ImGui::IsKeyPressed(GLFW_KEY_E) && snap.analysis && !exporting()) m_exportDialog = true;
    if (ctrl && ImGui::IsKeyPressed(GLFW_KEY_Q)) quit(0);
    if (ctrl) return;
    if (ImGui::IsKeyPressed(GLFW_KEY_F1)) focusView("Help");
    if (ImGui::IsKeyPressed(GLFW_KEY_ESCAPE)) m_ui.queryToken = -1;
    if (!snap.model) return;
    if (ImGui::IsKeyPressed(GLFW_KEY_UP)) m_ui.boundary = std::min(L, m_ui.boundary + 1);
    if (ImGui::IsKeyPressed(GLFW_KEY_DOWN)) m_ui.boundary = std::max(0, m_ui.boundary - 1);
    if (ImGui::IsKeyPressed(GLFW_KEY_RIGHT)) m_ui.layer = std::min(L - 1, m_ui.layer + 1);
    if (ImGui::IsKeyPressed(GLFW_KEY_LEFT)) m_ui.layer = std::max(0, m_ui.layer - 1);
    if (ImGui::IsKeyPressed(GLFW_KEY_H))
        m_ui.head = m_ui.head + 1 >= snap.model->config.numHeads ? -1 : m_ui.head + 1;
    if (ImGui::IsKeyPressed(GLFW_KEY_T)) m_ui.tint = static_cast<DocumentTint>((static_cast<int>(m_ui.tint) + 1) % 4);
    if (ImGui::IsKeyPressed(GLFW_KEY_L)) m_ui.mapLog = !m_ui.mapLog;
    if (ImGui::IsKeyPressed(GLFW_KEY_R)) m_ui.mapX0 = m_ui.mapY0 = 0, m_ui.mapX1 = m_ui.mapY1 = 1;
    if (ImGui::IsKeyPressed(GLFW_KEY_S)) runSweep();
}

void GuiApp::saveScreenshot(const std::string& path) {
    int fw = 0, fh = 0;
    glfwGetFramebufferSize(m_window, &fw, &fh);
    std::vector<uint8_t> pixels(static_cast<size_t>(fw) * static_cast<size_t>(fh) * 4);
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glReadPixels(0, 0, fw, fh, GL_RGBA, GL_UNSIGNED_BYTE, pixels.data());
    std::vector<uint8_t> flipped(pixels.size());
    const size_t row = static_cast<size_t>(fw) * 4;
    for (int y = 0; y < fh; ++y)
        std::copy_n(pixels.data() + static_cast<size_t>(fh - 1 - y) * row, row, flipped.data() + static_cast<size_t>(y) * row);
    for (size_t i = 3; i < flipped.size(); i += 4) flipped[i] = 255;
    writePngRgba(path, flipped, fw, fh);
}

void GuiApp::writeState(const std::string& path) const {
    auto s = m_runner.latest();
    nlohmann::json j = uiStateToJson(m_ui);
    j["snapshot"] = {{"has_model", s->model != nullptr},
                     {"has_document", s->document != nullptr},
                     {"tokens", s->document ? s->document->tokens.size() : 0},
                     {"error", s->error},
                     {"busy", s->busy}};
    if (s->analysis) {
        const auto& a = *s->analysis;
        nlohmann::json layers = nlohmann::json::array();
        for (const auto& la : a.layers) {
            nlohmann::json l = {{"spec", la.spec.text()}, {"beyond_mass", la.headMean.beyondMass},
                                {"mean_distance", la.headMean.meanDistance}, {"pool_rows", la.poolRows},
                                {"pool_cols", la.poolCols}};
            if (!la.selections.countBins.empty()) l["selected_per_query"] = summarizeSelections(la).selectedPerQuery;
            layers.push_back(l);
        }
        j["analysis"] = {{"pattern", a.pattern.text()}, {"boundary", a.pattern.boundary()}, {"mean_loss", a.meanLoss},
                         {"seconds", a.seconds},
                         {"relative_cost", a.cost.relativeCost}, {"query_rows", a.queryRows},
                         {"map_region", {a.mapQ0, a.mapQ1, a.mapK0, a.mapK1}}, {"layers", layers}};
    }
    if (s->sweep) j["sweep_points"] = s->sweep->size();
    j["exporting"] = exporting();
    j["export_dir"] = m_exportDir;
    j["export_files"] = m_exportFiles;
    j["export_error"] = m_exportError;
    j["document_visible"] = {m_ui.documentFirstVisible, m_ui.documentLastVisible};
    j["export_dialog_open"] = m_exportDialogOpen;
    j["export_overwrite_question"] = m_exportDialogOpen ? m_exportOverwrite : 0;  // N of "Overwrite N files?"
    auto c = m_compareRunner.latest();
    if (c->analysis && !m_compareSubmitted.empty()) j["compare_pattern"] = c->analysis->pattern.text();
    writeFileAtomic(path, j.dump(2) + "\n");
}

void GuiApp::loadSettings() {
    try {
        m_ui = loadUiState(m_options.settingsPath);
    } catch (const Error& e) {
        std::fprintf(stderr, "spanscope: ignoring settings: %s\n", e.what());
    }
}

void GuiApp::saveSettings() const {
    if (m_script) return;  // scripted sessions leave the user's settings alone
    try {
        saveUiState(m_options.settingsPath, m_ui);
    } catch (const Error& e) {
        std::fprintf(stderr, "spanscope: cannot save settings: %s\n", e.what());
    }
}

}  // namespace spanscope
