// spanscope: the desktop app. Without a display it says so and runs the same analysis headless.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "app/cli_commands.h"
#include "app/gui_app.h"
#include "engine/errors.h"

int main(int argc, char** argv) {
    spanscope::GuiOptions o;
    CLI::App cli{"spanscope — look inside mixed-attention-span transformers"};
    cli.add_option("--model", o.modelDir, "model folder to open");
    cli.add_option("--doc", o.docPath, "document to open");
    cli.add_option("--device", o.device, "cpu, cuda or auto")->capture_default_str();
    cli.add_option("--script", o.scriptPath, "run a scripted session (see app/gui_script.h)");
    cli.add_option("--frame-log", o.frameLogPath, "write frame times (CSV) at exit");
    cli.add_option("--settings", o.settingsPath, "settings file (default ~/.config/spanscope/settings.json)");
    cli.add_option("--width", o.width)->capture_default_str();
    cli.add_option("--height", o.height)->capture_default_str();
    CLI11_PARSE(cli, argc, argv);
    try {
        spanscope::GuiApp app(o);
        std::string why;
        if (app.init(why)) return app.run();
        std::fprintf(stderr, "spanscope: %s; running the same analysis headless instead.\n", why.c_str());
    } catch (const spanscope::Error& e) {
        std::fprintf(stderr, "spanscope: error: %s\n", e.what());
        return 1;
    }
    if (o.modelDir.empty() || o.docPath.empty()) {
        std::fprintf(stderr, "spanscope: headless mode needs --model and --doc\n");
        return 1;
    }
    spanscope::cli::AnalyzeArgs a;
    a.run.modelDir = o.modelDir;
    a.run.docPath = o.docPath;
    a.run.device = o.device;
    a.run.commandLine = "spanscope (headless)";
    try {
        return spanscope::cli::runAnalyze(a);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "spanscope: error: %s\n", e.what());
        return 1;
    }
}
