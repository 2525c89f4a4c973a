#include "app/gui_script.h"

#include <cstdio>
#include <sstream>

#include "app/gui_app.h"
#include "engine/atomic_file.h"
#include "engine/errors.h"

namespace spanscope {

constexpr double kWaitTimeoutSeconds = 600;

GuiScript::GuiScript(const std::string& path) {
    std::istringstream in(readFile(path, 1 << 20));
    for (std::string line; std::getline(in, line);)
        if (!line.empty() && line[0] != '#') m_lines.push_back(line);
}

void GuiScript::fail(GuiApp& app, const std::string& why) {
    std::fprintf(stderr, "spanscope script: line %zu '%s': %s\n", m_next, m_lines[m_next - 1].c_str(), why.c_str());
    app.quit(2);
}

void GuiScript::step(GuiApp& app) {
    if (m_framesToWait > 0) {
        --m_framesToWait;
        return;
    }
    if (m_waiting) {
        if (!app.settled()) {
            if (std::chrono::duration<double>(std::chrono::steady_clock::now() - m_waitStart).count() > kWaitTimeoutSeconds)
                fail(app, "engine did not settle in time");
            return;
        }
        m_waiting = false;
        m_framesToWait = 2;  // let the views draw the new snapshot
        return;
    }
    if (m_next >= m_lines.size()) {
        app.quit(0);
        return;
    }
    std::istringstream cmd(m_lines[m_next++]);
    std::string op, arg;
    cmd >> op;
    std::getline(cmd >> std::ws, arg);
    UiState& ui = app.ui();
    try {
        if (op == "model") app.openModel(arg);
        else if (op == "doc") app.openDocument(arg);
        else if (op == "drop") app.dropFiles({arg});
        else if (op == "wait") {
            m_waiting = true;
            m_waitStart = std::chrono::steady_clock::now();
            m_framesToWait = 1;  // one frame for the UI to submit what it now wants
        } else if (op == "boundary") ui.boundary = std::stoi(arg);
        else if (op == "kind") ui.sparseKind = arg == "block" ? AttentionKind::Block : arg == "sparsek" ? AttentionKind::SparseK : AttentionKind::Window;
        else if (op == "span") ui.sparseSpan = std::stoll(arg);
        else if (op == "topk") ui.sparseTopK = std::max<int64_t>(1, std::stoll(arg));
        else if (op == "layer") ui.layer = std::stoi(arg);
        else if (op == "head") ui.head = std::stoi(arg);
        else if (op == "token") ui.queryToken = std::stoll(arg);
        else if (op == "tint") {
            ui.tint = arg == "delta" ? DocumentTint::DeltaLoss
                      : arg == "attention" ? DocumentTint::Attention
                      : arg == "beyond" ? DocumentTint::BeyondSpan
                      : arg == "selections" ? DocumentTint::Selections
                                            : DocumentTint::Loss;
        } else if (op == "zoom") {
            std::istringstream z(arg);
            z >> ui.mapX0 >> ui.mapX1 >> ui.mapY0 >> ui.mapY1;
        } else if (op == "sweep") app.runSweep();
        else if (op == "compare") {
            ui.comparePattern = arg;
            app.runCompare(arg);
        } else if (op == "focus") app.focusView(arg);
        else if (op == "frames") m_framesToWait = std::stoi(arg);
        else if (op == "screenshot") app.requestScreenshot(arg);
        else if (op == "state") app.writeState(arg);
        else if (op == "export" || op == "export-force") app.startExport(arg, op == "export-force");
        else if (op == "export-dialog") {
            if (arg.empty()) app.openExportDialog();
            else app.pressExportDialog(arg);
        } else if (op == "export-answer") {
            if (arg != "overwrite" && arg != "cancel") fail(app, "export-answer takes overwrite or cancel");
            else if (!app.answerExportOverwrite(arg == "overwrite")) fail(app, "the export dialog is not asking to overwrite");
        }
        else if (op == "expect-error") {
            std::string err = app.runner().latest()->error;
            if (err.find(arg) == std::string::npos) fail(app, "expected an error containing '" + arg + "', got '" + err + "'");
        } else if (op == "quit") app.quit(0);
        else fail(app, "unknown command");
    } catch (const std::exception& e) {
        fail(app, e.what());
    }
}

}  // namespace spanscope
