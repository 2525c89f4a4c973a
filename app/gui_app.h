// The spanscope desktop app: GLFW window, ImGui frame loop, app state, the engine worker.
//
// The UI thread owns the window, GL and UiState. Each frame it takes the engine's latest
// immutable snapshot (no lock held while drawing), draws every view, and turns UiState into at
// most one new analysis request (debounced while the user drags). The worker never touches GL.
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "engine/runner.h"
#include "views/view.h"

struct GLFWwindow;

namespace spanscope {

struct GuiOptions {
    std::string modelDir, docPath, device = "cpu";
    std::string scriptPath;     // scripted session (tests, benchmarks): one command per line
    std::string frameLogPath;   // CSV of frame times, written at exit
    std::string settingsPath;   // default: $XDG_CONFIG_HOME/spanscope/settings.json
    int width = 1600, height = 1000;
};

class GuiScript;

class GuiApp {
public:
    explicit GuiApp(GuiOptions options);
    ~GuiApp();
    // Creates the window; false (with `error`) when there is no display or no OpenGL 3.
    bool init(std::string& error);
    int run();  // frame loop until the window closes or the script quits; returns the exit code

    // Used by the menu, drag-and-drop, shortcuts and the script.
    void openModel(const std::string& dir);
    void openDocument(const std::string& path);
    void runSweep();
    void runCompare(const std::string& pattern);
    UiState& ui() { return m_ui; }
    Runner& runner() { return m_runner; }
    bool settled() const;  // the worker has finished everything the UI asked for
    void requestScreenshot(const std::string& path) { m_screenshotPath = path; }
    void writeState(const std::string& path) const;
    void focusView(const std::string& name);
    void quit(int code) { m_quit = true; m_exitCode = code; }
    void dropFiles(const std::vector<std::string>& paths);
    // Writes the figures of what the views show (gui_export.cpp) on a background thread from the
    // latest snapshot; refuses to overwrite existing files unless `force` (the dialog asks).
    void startExport(const std::string& dir, bool force);
    bool exporting() const { return m_export.valid(); }
    void openExportDialog() { m_exportDialog = true; }
    // The script's hand on the export dialog: open it with `dir` typed in and press Export, or
    // answer its overwrite question (false: it is not asking). The dialog acts next frame.
    void pressExportDialog(const std::string& dir);
    bool answerExportOverwrite(bool overwrite);

private:
    void frame();
    void drawMenuBar();
    void drawStatusBar(const Snapshot& snap);
    void drawOpenDialog();
    void drawExportDialog();
    void drawExportStatus();
    void pollExport();
    void drawErrorBanner(const Snapshot& snap);
    void handleShortcuts(const Snapshot& snap);
    void submitAnalysis(const Snapshot& snap);
    void saveScreenshot(const std::string& path);
    void loadSettings();
    void saveSettings() const;

    GuiOptions m_options;
    GLFWwindow* m_window = nullptr;
    Runner m_runner{computeThreads()};
    // The Compare view's second pattern, on its own worker. 0: it leaves LibTorch's thread count
    // (a process-wide setting) to m_runner; a second count here would override the first.
    Runner m_compareRunner{0};
    static constexpr double kBusyFrameMs = 200.0;  // frame interval while the engine works and no input comes
    static int computeThreads();  // LibTorch threads of the engine (SPANSCOPE_COMPUTE_THREADS overrides)
    UiState m_ui;
    Actions m_actions;
    std::vector<std::unique_ptr<View>> m_views;
    std::unique_ptr<GuiScript> m_script;
    std::shared_ptr<const Snapshot> m_snap;
    const void* m_seenModel = nullptr;  // the model whose trained pattern the UI last looked at

    AnalysisRequest m_submitted;       // last request sent to the worker
    std::string m_submittedKey;        // model + document it was sent for
    AnalysisRequest m_pending;         // what the UI wants now
    std::chrono::steady_clock::time_point m_pendingSince;
    std::string m_compareSubmitted;
    std::string m_dismissedError;
    std::string m_screenshotPath;
    int m_openDialog = 0;              // 0 none, 1 document, 2 model
    std::string m_dialogPath;
    std::vector<double> m_frameMs;

    struct ExportOutcome {
        std::string dir;
        std::vector<std::string> files;
        std::string error;
    };
    std::future<ExportOutcome> m_export;  // running export; works only on snapshot copies
    bool m_exportDialog = false;          // open the export dialog next frame
    std::string m_exportPath = "spanscope-figures";
    size_t m_exportOverwrite = 0;         // > 0: the dialog asks "Overwrite N files?"
    bool m_exportDialogOpen = false;      // the dialog was drawn this frame
    enum class ExportPress { None, Export, Overwrite, Cancel };
    ExportPress m_exportPress = ExportPress::None;  // a button the script pressed
    std::string m_exportDir, m_exportError;
    std::vector<std::string> m_exportFiles;
    bool m_quit = false;
    int m_exitCode = 0;
};

}  // namespace spanscope
