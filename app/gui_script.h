// Scripted GUI sessions, for tests and benchmarks: one command per line, run one per frame.
//
//   model DIR | doc FILE | drop PATH      open (drop: as if dropped on the window)
//   wait                                  until the engine (and a running export) has done everything asked
//   boundary N | kind window|block|sparsek | span N | topk N (SparseK's k) | layer N | head N | token N
//   tint loss|delta|attention|beyond|selections
//   zoom X0 X1 Y0 Y1                      attention-map view region as fractions of the document
//   sweep | compare PATTERN | focus VIEW  actions
//   frames N                              draw N frames before the next command
//   screenshot FILE.png | state FILE.json
//   export DIR | export-force DIR         File > Export view figures (force: overwrite); wait waits for it
//   export-dialog [DIR]                   open the export dialog (it stays open: for screenshots); with DIR:
//                                         type DIR into it and press Export (it asks when files exist)
//   export-answer overwrite|cancel        press a button of the dialog's "Overwrite N files?" question;
//                                         fails unless the dialog is asking
//   expect-error TEXT                     fail unless the current error contains TEXT
//   quit
// A failing command or a wait longer than the timeout ends the app with exit code 2.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace spanscope {

class GuiApp;

class GuiScript {
public:
    explicit GuiScript(const std::string& path);
    void step(GuiApp& app);  // called once per frame

private:
    void fail(GuiApp& app, const std::string& why);

    std::vector<std::string> m_lines;
    size_t m_next = 0;
    int m_framesToWait = 0;
    bool m_waiting = false;
    std::chrono::steady_clock::time_point m_waitStart;
};

}  // namespace spanscope
