// spanscope-cli: headless front end of the spanscope engine.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "app/cli_commands.h"
#include "engine/errors.h"

namespace {

std::string joinArgs(int argc, char** argv) {
    std::string s;
    for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
    return s;
}

void addRunOptions(CLI::App* cmd, spanscope::cli::CommonRun& r) {
    cmd->add_option("--model", r.modelDir, "model folder (config.json, model.safetensors, tokenizer.json)")->required();
    cmd->add_option("--doc", r.docPath, "document: a UTF-8 text file")->required();
    cmd->add_option("--device", r.device, "cpu, cuda or auto")->capture_default_str();
    cmd->add_option("--max-tokens", r.maxTokens, "refuse documents longer than this")->capture_default_str();
    cmd->add_option("--first-tokens", r.firstTokens, "study only the document's first N tokens (0: all)");
    cmd->add_option("--json", r.jsonOut, "write the full numbers as JSON to this file");
}

// The first line of a message (LibTorch errors carry a C++ backtrace after it).
std::string firstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
    using namespace spanscope::cli;
    CLI::App app{"spanscope-cli — look inside mixed-attention-span transformers"};
    app.require_subcommand(1);
    const std::string commandLine = joinArgs(argc, argv);

    AnalyzeArgs analyze;
    auto* a = app.add_subcommand("analyze", "per-layer attention statistics, per-token loss and cost of a pattern");
    addRunOptions(a, analyze.run);
    a->add_option("--pattern", analyze.pattern, "layer pattern, e.g. full*4,window:512*8 or masformer:4,block:1024");
    a->add_option("--pool", analyze.poolSize, "pooled attention map size P (0..1024)")->capture_default_str();
    a->add_option("--beyond", analyze.beyondSpan, "measure mass beyond this distance (default: the sparse span)");
    a->add_option("--sink", analyze.sinkTokens, "sink = mass on this many first tokens")->capture_default_str();
    a->add_option("--rows", analyze.rows, "exact attention rows for these query positions")->delimiter(',');
    a->add_flag("--maps", analyze.includeMaps, "include pooled maps in the JSON");
    a->add_option("--repeat", analyze.repeat, "run the analysis N times and report the warm latency")
        ->check(CLI::Range(1, 1000));

    SweepArgs sweep;
    auto* s = app.add_subcommand("sweep", "perplexity against attention cost for boundary l = 0..L");
    addRunOptions(s, sweep.run);
    s->add_option("--sparse", sweep.sparse, "sparse kind above the boundary, e.g. window:512, block:1024")->capture_default_str();

    CostArgs cost;
    auto* c = app.add_subcommand("cost", "the attention cost model alone");
    c->add_option("--layers", cost.layers, "L")->capture_default_str();
    c->add_option("--boundary", cost.boundary, "l, full layers at the bottom")->capture_default_str();
    c->add_option("--sparse", cost.sparse, "sparse kind above the boundary")->capture_default_str();
    c->add_option("--pattern", cost.pattern, "a full layer pattern instead of --layers/--boundary/--sparse");
    c->add_option("--tokens", cost.tokens, "n")->capture_default_str();
    c->add_option("--heads", cost.heads, "H")->capture_default_str();
    c->add_option("--head-dim", cost.headDim, "d")->capture_default_str();
    c->add_option("--bytes", cost.bytesPerElement, "bytes per element")->capture_default_str();
    c->add_option("--json", cost.jsonOut, "write the numbers as JSON");

    InitModelArgs init;
    auto* i = app.add_subcommand("init-model", "create a randomly initialised model folder");
    i->add_option("--out", init.out, "model folder to write")->required();
    i->add_option("--tokenizer", init.tokenizer, "tokenizer.json to include (sets vocab size)")->required();
    i->add_option("--layers", init.layers)->capture_default_str();
    i->add_option("--hidden", init.hidden)->capture_default_str();
    i->add_option("--heads", init.heads)->capture_default_str();
    i->add_option("--intermediate", init.intermediate)->capture_default_str();
    i->add_option("--context", init.context, "training context (max_position_embeddings)")->capture_default_str();
    i->add_option("--seed", init.seed)->capture_default_str();
    i->add_option("--dtype", init.dtype, "bfloat16, float16 or float32")->capture_default_str();
    i->add_option("--pattern", init.pattern, "default layer pattern recorded in config.json");

    TrainTokenizerArgs tok;
    auto* t = app.add_subcommand("train-tokenizer", "train a byte-level BPE tokenizer on text files");
    t->add_option("--out", tok.out, "tokenizer.json to write")->required();
    t->add_option("--vocab", tok.vocabSize, "vocabulary size")->capture_default_str();
    t->add_option("inputs", tok.inputs, "UTF-8 text files")->required();

    TokenizeArgs tokz;
    auto* tz = app.add_subcommand("tokenize", "encode corpus text files (documents separated by <|endoftext|> lines) "
                                              "into a .tokens file for training");
    tz->add_option("--tokenizer", tokz.tokenizer, "tokenizer.json")->required();
    tz->add_option("--out", tokz.out, ".tokens file to write")->required();
    tz->add_option("--threads", tokz.threads, "encoding threads (0: all cores)")->capture_default_str();
    tz->add_option("inputs", tokz.inputs, "UTF-8 text files")->required();

    spanscope::TrainOptions tr;
    auto* trn = app.add_subcommand("train", "train a model, or continue training one into another pattern or context");
    trn->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a later option wins
    trn->add_option("--train", tr.trainData, "training .tokens file")->required();
    trn->add_option("--val", tr.valData, "validation .tokens file")->required();
    trn->add_option("--out", tr.out, "output folder (resumes from its checkpoint when it has one)")->required();
    trn->add_option("--init", tr.init, "model folder to continue training from");
    trn->add_option("--tokenizer", tr.tokenizer, "tokenizer.json of a fresh model");
    trn->add_option("--layers", tr.layers, "fresh model: layers")->capture_default_str();
    trn->add_option("--hidden", tr.hidden, "fresh model: hidden size")->capture_default_str();
    trn->add_option("--heads", tr.heads, "fresh model: attention heads")->capture_default_str();
    trn->add_option("--intermediate", tr.intermediate, "fresh model: MLP size")->capture_default_str();
    trn->add_option("--pattern", tr.pattern, "layer pattern (default: the init model's, else full)");
    trn->add_option("--sparsek-recency", tr.sparsekRecency,
                    "new sparsek scorers start at u_j = beta * j (beta: this; 0: all keys alike)")->capture_default_str();
    trn->add_option("--context", tr.context, "tokens per sequence")->capture_default_str();
    trn->add_option("--batch", tr.batch, "sequences per step")->capture_default_str();
    trn->add_option("--steps", tr.steps, "optimizer steps")->capture_default_str();
    trn->add_option("--lr", tr.lr, "peak learning rate")->capture_default_str();
    trn->add_option("--min-lr-ratio", tr.minLrRatio, "final learning rate / peak")->capture_default_str();
    trn->add_option("--warmup", tr.warmup, "linear warm-up steps")->capture_default_str();
    trn->add_option("--weight-decay", tr.weightDecay, "AdamW weight decay (matrices only)")->capture_default_str();
    trn->add_option("--clip", tr.clip, "gradient clipping: maximum global norm")->capture_default_str();
    trn->add_option("--eval-every", tr.evalEvery, "evaluate on the validation data every N steps")->capture_default_str();
    trn->add_option("--eval-batches", tr.evalBatches, "validation batches per evaluation")->capture_default_str();
    trn->add_option("--checkpoint-every", tr.checkpointEvery, "checkpoint every N steps")->capture_default_str();
    trn->add_option("--log-every", tr.logEvery, "progress line every N steps")->capture_default_str();
    trn->add_option("--seed", tr.seed, "initialisation and data order")->capture_default_str();
    trn->add_option("--device", tr.device, "cpu, cuda or auto")->capture_default_str();
    trn->add_option("--dtype", tr.dtype, "storage dtype of the finished model")->capture_default_str();
    trn->add_option("--stop-after", tr.stopAfterSteps, "stop with a checkpoint after N steps of this call");

    EvaluateArgs ev;
    auto* evc = app.add_subcommand("evaluate", "mean next-token loss of a model on a .tokens file");
    evc->add_option("--model", ev.modelDir, "model folder")->required();
    evc->add_option("--tokens", ev.tokens, ".tokens file")->required();
    evc->add_option("--context", ev.context, "window length")->capture_default_str();
    evc->add_option("--max-tokens", ev.maxTokens, "evaluate at most this many tokens")->capture_default_str();
    evc->add_option("--pattern", ev.pattern, "layer pattern (default: the model's trained pattern)");
    evc->add_option("--device", ev.device, "cpu, cuda or auto")->capture_default_str();
    evc->add_option("--json", ev.jsonOut, "write the result as JSON");

#ifdef SPANSCOPE_HAVE_FIGURES
    ReportArgs report;
    auto* r = app.add_subcommand("report", "figures (PNG/SVG/PDF + CSV), manifest.json and index.html of an analysis");
    r->add_option("--model", report.run.modelDir, "model folder");
    r->add_option("--doc", report.run.docPath, "document: a UTF-8 text file");
    r->add_option("--pattern", report.pattern, "layer pattern (default: the model's trained pattern)");
    r->add_flag("--sweep", report.sweep, "add perplexity against cost over the boundary sweep l = 0..L");
    r->add_option("--sparse", report.sparse, "sparse kind of the sweep (default: the pattern's, else window:512)");
    r->add_option("--layers", report.layers, "attention maps for these layers (default: bottom, boundary, top)")
        ->delimiter(',');
    r->add_option("--heads", report.heads, "maps of the head mean, or all: also one per head")
        ->check(CLI::IsMember({"mean", "all"}))->capture_default_str();
    r->add_option("--pool", report.poolSize, "attention map size P (1..1024)")->capture_default_str();
    r->add_option("--beyond", report.beyondSpan, "measure mass beyond this distance (default: the sparse span)");
    r->add_option("--sink", report.sinkTokens, "sink = mass on this many first tokens")->capture_default_str();
    r->add_option("--device", report.run.device, "cpu, cuda or auto")->capture_default_str();
    r->add_option("--max-tokens", report.run.maxTokens, "refuse documents longer than this")->capture_default_str();
    r->add_option("--first-tokens", report.run.firstTokens, "study only the document's first N tokens (0: all)");
    r->add_option("--tint", report.tint, "document figure: tint tokens by loss, delta (minus all-full), attention "
                                         "(of --query), beyond (mass beyond the span) or selections (a SparseK layer's: how often each token "
                                         "was selected, or with --query the keys that token selected)")
        ->check(CLI::IsMember({"loss", "delta", "attention", "beyond", "selections"}))->capture_default_str();
    r->add_option("--select-layer", report.selectLayer, "layer of the tint, shaded in the layer stack "
                                                        "(default: the lowest sparse layer)");
    r->add_option("--select-head", report.selectHead, "head of the tint and the layer statistics (default -1: mean)");
    r->add_option("--query", report.query, "query token of the attention tint");
    r->add_option("--text-window", report.textWindow, "FIRST,COUNT tokens of the document figure "
                                                      "(default: 400 around the query)")->delimiter(',')->expected(2);
    r->add_option("--compare", report.compare, "a second pattern, drawn side by side with --pattern");
    r->add_option("--out", report.out, "folder to write the report into (created if missing)")->required();
    auto* from = r->add_option("--from", report.from, "regenerate the report a manifest.json describes");
    for (const char* name : {"--model", "--doc", "--pattern", "--sweep", "--sparse", "--layers", "--heads", "--pool",
                             "--beyond", "--sink", "--device", "--max-tokens", "--first-tokens", "--tint", "--select-layer", "--select-head",
                             "--query", "--text-window", "--compare"})
        from->excludes(r->get_option(name));
    r->add_flag("--force", report.force, "overwrite existing files");
#endif

    CLI11_PARSE(app, argc, argv);
    analyze.run.commandLine = sweep.run.commandLine = commandLine;
    try {
        if (*a) return runAnalyze(analyze);
        if (*s) return runSweep(sweep);
        if (*c) return runCost(cost);
        if (*i) return runInitModel(init);
        if (*t) return runTrainTokenizer(tok);
        if (*tz) return runTokenize(tokz);
        if (*evc) return runEvaluate(ev);
        if (*trn) {
            tr.commandLine = commandLine;
            return runTrain(tr);
        }
#ifdef SPANSCOPE_HAVE_FIGURES
        report.run.commandLine = commandLine;
        if (*r) return runReport(report);
#endif
    } catch (const spanscope::Error& e) {
        std::fprintf(stderr, "spanscope-cli: error: %s\n", firstLine(e.what()).c_str());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "spanscope-cli: error: out of memory (try a shorter document or a smaller --pool)\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "spanscope-cli: error: %s\n", firstLine(e.what()).c_str());
        return 1;
    }
    return 0;
}
