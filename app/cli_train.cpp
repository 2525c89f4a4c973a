// spanscope-cli tokenize / train / evaluate (see engine/token_data.h and engine/train.h).
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "app/cli_commands.h"
#include "engine/atomic_file.h"
#include "engine/document.h"
#include "engine/errors.h"
#include "engine/token_data.h"
#include "engine/tokenizer.h"
#include "engine/train.h"

namespace spanscope::cli {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void onStopSignal(int) { g_stop = true; }

std::string duration(double s) {
    char buf[32];
    const long t = static_cast<long>(s + 0.5);
    if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
    return buf;
}

}  // namespace

int runTokenize(const TokenizeArgs& a) {
    Tokenizer tok = Tokenizer::load(a.tokenizer);
    checkWritable(a.out);
    std::vector<std::string> texts;
    std::vector<std::string_view> docs;
    for (const auto& path : a.inputs) texts.push_back(loadDocument(path, INT64_MAX));
    for (const auto& t : texts)
        for (auto d : splitDocuments(t)) docs.push_back(d);
    if (docs.empty()) throw InputError("no documents in " + a.inputs.front() + (a.inputs.size() > 1 ? " ..." : ""));
    const int threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    int lastPercent = -1;
    TokenData d = tokenizeDocuments(tok, docs, threads, [&](size_t done, size_t total) {
        const int percent = static_cast<int>(done * 100 / std::max<size_t>(1, total));
        if (percent / 5 != lastPercent / 5) {
            std::fprintf(stderr, "[tokenize] %zu/%zu documents (%d%%)\n", done, total, percent);
            lastPercent = percent;
        }
    });
    d.save(a.out);
    size_t bytes = 0;
    for (const auto& t : texts) bytes += t.size();
    std::printf("wrote %s: %zu documents, %zu tokens (%.2f bytes/token), vocabulary %d\n", a.out.c_str(),
                static_cast<size_t>(d.documents), d.ids.size(), static_cast<double>(bytes) / static_cast<double>(d.ids.size()),
                d.vocabSize);
    return 0;
}

int runTrain(const TrainOptions& o) {
    std::signal(SIGINT, onStopSignal);
    std::signal(SIGTERM, onStopSignal);
    TrainResult r = train(o, [&](const TrainProgress& p) {
        if (p.resumed) std::fprintf(stderr, "[train] resumed from the checkpoint in %s\n", o.out.c_str());
        std::fprintf(stderr, "[train] step %lld/%lld  loss %.4f  lr %.2e  |g| %.2f  %.0f tok/s  left %s%s\n",
                     static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss, p.lr, p.gradNorm,
                     p.tokensPerSecond, duration(p.secondsLeft).c_str(),
                     p.valLoss >= 0 ? ("  val " + std::to_string(p.valLoss).substr(0, 6)).c_str() : "");
    }, &g_stop);
    if (!r.finished) {
        std::printf("stopped after step %lld of %lld with a checkpoint in %s/checkpoint; run the same command again "
                    "to resume\n", static_cast<long long>(r.lastStep), static_cast<long long>(o.steps), o.out.c_str());
        return g_stop ? 130 : 0;
    }
    std::printf("trained %s: %lld steps, final loss %.4f, validation loss %.4f; record in %s/training.json\n",
                o.out.c_str(), static_cast<long long>(r.lastStep), r.lastLoss, r.lastValLoss, o.out.c_str());
    return 0;
}

int runEvaluate(const EvaluateArgs& a) {
    const double loss = evaluateModel(a.modelDir, a.tokens, a.context, a.maxTokens, a.pattern, a.device);
    std::printf("%s on %s: loss %.4f nats/token (perplexity %.2f), context %lld\n", a.modelDir.c_str(),
                a.tokens.c_str(), loss, std::exp(loss), static_cast<long long>(a.context));
    if (!a.jsonOut.empty())
        writeFileAtomic(a.jsonOut, nlohmann::json{{"model", a.modelDir}, {"tokens", a.tokens}, {"context", a.context},
                                                  {"pattern", a.pattern}, {"loss", loss}}.dump(1) + "\n");
    return 0;
}

}  // namespace spanscope::cli
