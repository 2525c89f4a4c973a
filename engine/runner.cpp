#include "engine/runner.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <functional>

#include "engine/analysis_json.h"
#include "engine/document.h"
#include "engine/errors.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

namespace spanscope {

struct Runner::Job {
    enum class Kind { LoadModel, LoadDocument, Analyze, Sweep } kind;
    uint64_t generation = 0;
    std::string path;
    std::string device;
    AnalysisRequest request;
    LayerSpec sparse;
};

Runner::Runner(int computeThreads) : m_snapshot(std::make_shared<Snapshot>()), m_computeThreads(computeThreads) {
    reuseHostMemoryForLargeTensors();  // before the worker thread's first allocation
    m_thread = std::thread([this] { run(); });
}

Runner::~Runner() {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_stop = true;
        m_queue.clear();
    }
    m_wake.notify_all();
    m_thread.join();
}

std::shared_ptr<const Snapshot> Runner::latest() const { return std::atomic_load(&m_snapshot); }

uint64_t Runner::submitted() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_generation;
}

Runner::Counters Runner::counters() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_counters;
}

bool Runner::idle() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_queue.empty() && !m_running;
}

uint64_t Runner::enqueue(const std::shared_ptr<Job>& job) {
    std::lock_guard<std::mutex> lock(m_mutex);
    job->generation = ++m_generation;
    if (job->kind == Job::Kind::Analyze || job->kind == Job::Kind::Sweep) {
        // Newest wins: drop queued analyses and sweeps; the running one sees superseded() and stops.
        m_newestAnalysis = job->generation;
        dropQueuedAnalyses();
    }
    m_queue.push_back(job);
    m_wake.notify_one();
    return job->generation;
}

uint64_t Runner::loadModel(const std::string& dir, const std::string& device) {
    auto job = std::make_shared<Job>();
    job->kind = Job::Kind::LoadModel;
    job->path = dir;
    job->device = device;
    return enqueue(job);
}

uint64_t Runner::loadDocument(const std::string& path) {
    auto job = std::make_shared<Job>();
    job->kind = Job::Kind::LoadDocument;
    job->path = path;
    return enqueue(job);
}

uint64_t Runner::analyze(const AnalysisRequest& request) {
    auto job = std::make_shared<Job>();
    job->kind = Job::Kind::Analyze;
    job->request = request;
    return enqueue(job);
}

uint64_t Runner::sweep(const LayerSpec& sparse) {
    auto job = std::make_shared<Job>();
    job->kind = Job::Kind::Sweep;
    job->sparse = sparse;
    return enqueue(job);
}

void Runner::dropQueuedAnalyses() {
    m_queue.erase(std::remove_if(m_queue.begin(), m_queue.end(),
                                 [](const auto& j) { return j->kind == Job::Kind::Analyze || j->kind == Job::Kind::Sweep; }),
                  m_queue.end());
}

void Runner::cancel() {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_cancelledUpTo = m_generation;
    dropQueuedAnalyses();
}

bool Runner::superseded(uint64_t generation) const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_stop || generation < m_newestAnalysis || generation <= m_cancelledUpTo;
}

void Runner::publish(const std::function<void(Snapshot&)>& edit, bool wake) {
    auto next = std::make_shared<Snapshot>(*std::atomic_load(&m_snapshot));
    edit(*next);
    std::atomic_store(&m_snapshot, std::shared_ptr<const Snapshot>(std::move(next)));
    if (!wake) return;
    std::lock_guard<std::mutex> lock(m_hookMutex);  // held while it runs: see setPublishHook
    if (m_publishHook) m_publishHook();
}

// Once this returns, the old hook is not running and will not run again.
void Runner::setPublishHook(std::function<void()> hook) {
    std::lock_guard<std::mutex> lock(m_hookMutex);
    m_publishHook = std::move(hook);
}

// A new model or document: every result derived from the old one is gone, and so is a load error.
void Runner::finishLoad(Snapshot& s, uint64_t generation) {
    s.analysis.reset();
    s.baseline.reset();
    s.sweep.reset();
    s.error.clear();
    s.errorFromLoad = false;
    s.generation = generation;
    s.busy = false;
    s.task.clear();
}

void Runner::run() {
    if (m_computeThreads > 0) at::set_num_threads(m_computeThreads);
    while (true) {
        std::shared_ptr<Job> job;
        {
            std::unique_lock<std::mutex> lock(m_mutex);
            m_wake.wait(lock, [&] { return m_stop || !m_queue.empty(); });
            if (m_stop) return;
            job = m_queue.front();
            m_queue.pop_front();
            m_running = true;
        }
        execute(*job);
        std::lock_guard<std::mutex> lock(m_mutex);
        m_running = false;
    }
}

void Runner::execute(const Job& job) {
    auto cancelled = [this, g = job.generation] { return superseded(g); };
    try {
        switch (job.kind) {
            case Job::Kind::LoadModel: {
                publish([&](Snapshot& s) { s.busy = true; s.task = "loading model " + job.path; s.progress = 0; });
                auto model = Model::load(job.path, job.device);
                if (!model->hasTokenizer()) throw InputError(job.path + ": no tokenizer.json in the model folder");
                m_model = model;
                m_cache.clear();
                auto info = std::make_shared<ModelInfo>(ModelInfo{job.path, model->config(), model->device()});
                auto doc = latest()->document;
                std::shared_ptr<DocumentInfo> retokenized;
                if (doc) {  // the document's tokens depend on the tokenizer
                    retokenized = std::make_shared<DocumentInfo>(*doc);
                    Encoding e = model->tokenizer().encode(doc->text);
                    retokenized->tokens = std::move(e.ids);
                    retokenized->offsets = std::move(e.offsets);
                }
                publish([&](Snapshot& s) {
                    s.model = info;
                    if (retokenized) s.document = retokenized;
                    finishLoad(s, job.generation);
                });
                break;
            }
            case Job::Kind::LoadDocument: {
                publish([&](Snapshot& s) { s.busy = true; s.task = "loading " + job.path; s.progress = 0; });
                auto doc = std::make_shared<DocumentInfo>();
                doc->path = job.path;
                doc->text = spanscope::loadDocument(job.path);  // the free function, not Runner::loadDocument
                doc->hash = fnv1a64Hex(doc->text);
                if (m_model) {
                    Encoding e = m_model->tokenizer().encode(doc->text);
                    checkTokenCount(static_cast<int64_t>(e.ids.size()), kDefaultMaxTokens, job.path);
                    doc->tokens = std::move(e.ids);
                    doc->offsets = std::move(e.offsets);
                }
                m_cache.clear();
                publish([&](Snapshot& s) {
                    s.document = doc;
                    finishLoad(s, job.generation);
                });
                break;
            }
            case Job::Kind::Analyze:
            case Job::Kind::Sweep: {
                auto snap = latest();
                if (!m_model) throw InputError("no model loaded");
                if (!snap->document || snap->document->tokens.size() < 2) throw InputError("no document loaded");
                const auto& tokens = snap->document->tokens;
                const int L = static_cast<int>(m_model->config().numLayers);
                if (job.kind == Job::Kind::Sweep) {
                    publish([&](Snapshot& s) { s.busy = true; s.task = "boundary sweep"; s.progress = 0; });
                    auto points = std::make_shared<std::vector<SweepPoint>>(sweepBoundary(
                        *m_model, tokens, job.sparse,
                        [&](int d, int t) { publish([&](Snapshot& s) { s.progress = double(d) / t; }, false); }, cancelled));
                    publish([&](Snapshot& s) {
                        s.sweep = points;
                        s.sweepSparse = job.sparse;
                        s.error.clear();
                        s.generation = job.generation;
                        s.busy = false;
                        s.task.clear();
                    });
                    break;
                }
                AnalysisOptions o;
                o.pattern = job.request.pattern;
                o.poolSize = job.request.poolSize;
                o.beyondSpan = job.request.beyondSpan;
                o.queryRows = job.request.queryRows;
                o.mapQ0 = job.request.mapQ0;
                o.mapQ1 = job.request.mapQ1;
                o.mapK0 = job.request.mapK0;
                o.mapK1 = job.request.mapK1;
                o.cancelled = cancelled;
                o.cache = &m_cache;  // layers below the first changed one are reused
                o.progress = [&](int d, int t) {
                    publish([&](Snapshot& s) {
                        s.task = "analysing layer " + std::to_string(d) + "/" + std::to_string(t);
                        s.progress = double(d) / t;
                    }, false);
                };
                publish([&](Snapshot& s) { s.busy = true; s.task = "analysing"; s.progress = 0; });
                {
                    std::lock_guard<std::mutex> lock(m_mutex);
                    ++m_counters.analysesStarted;
                }
                auto result = std::make_shared<AnalysisResult>(spanscope::analyze(*m_model, tokens, o));
                publish([&](Snapshot& s) {
                    s.analysis = result;
                    s.analysisGeneration = job.generation;
                    s.lastRequest = job.request;
                    if (!s.errorFromLoad) s.error.clear();
                    s.generation = job.generation;
                    s.task = "all-full baseline";
                });
                {
                    std::lock_guard<std::mutex> lock(m_mutex);
                    ++m_counters.analysesFinished;
                }
                if (!snap->baseline) {  // Δloss needs the all-full loss once per model and document
                    AnalysisOptions b;
                    b.pattern = parsePattern("full", L);
                    b.withStats = false;
                    b.cancelled = cancelled;
                    auto base = std::make_shared<AnalysisResult>(spanscope::analyze(*m_model, tokens, b));
                    publish([&](Snapshot& s) { s.baseline = base; });
                }
                publish([&](Snapshot& s) { s.busy = false; s.task.clear(); s.progress = 1; });
                break;
            }
        }
    } catch (const Cancelled&) {
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            ++m_counters.analysesCancelled;
        }
        publish([&](Snapshot& s) { s.busy = false; s.task.clear(); });
    } catch (const std::exception& e) {
        std::string msg = e.what();
        msg = msg.substr(0, msg.find('\n'));
        const bool load = job.kind == Job::Kind::LoadModel || job.kind == Job::Kind::LoadDocument;
        publish([&](Snapshot& s) {
            s.error = msg;
            s.errorFromLoad = load;
            s.busy = false;
            s.task.clear();
            s.generation = job.generation;
        });
    }
}

}  // namespace spanscope
