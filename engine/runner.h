// The engine's worker: one thread that owns the model, the device and all LibTorch state.
//
// Front ends submit requests by value; each gets a generation number. Newer analysis requests
// supersede older ones: the running analysis is cancelled between layers and only the newest
// pending one runs (dragging the boundary never queues stale work). Results are published as an
// immutable Snapshot (host memory only); readers call latest() — an atomic shared_ptr load, no
// lock held while drawing — and never see a half-built result. Errors cross the thread as data
// (Snapshot::error); nothing here exits the process.
//
// Thread safety: every public member is safe to call from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/analysis.h"
#include "engine/model_config.h"
#include "engine/pattern.h"

namespace spanscope {

class Model;

struct DocumentInfo {
    std::string path;
    std::string text;
    std::vector<int32_t> tokens;
    std::vector<std::pair<uint32_t, uint32_t>> offsets;  // byte range of each token in text
    std::string hash;                                   // fnv1a64 hex of the bytes
};

struct ModelInfo {
    std::string dir;
    ModelConfig config;
    std::string device;
};

struct AnalysisRequest {
    LayerPattern pattern;
    int64_t poolSize = 256;
    int64_t beyondSpan = 0;
    std::vector<int64_t> queryRows;
    int64_t mapQ0 = 0, mapQ1 = -1, mapK0 = 0, mapK1 = -1;  // attention-map region; -1: T

    bool operator==(const AnalysisRequest& o) const {
        return pattern == o.pattern && poolSize == o.poolSize && beyondSpan == o.beyondSpan &&
               queryRows == o.queryRows && mapQ0 == o.mapQ0 && mapQ1 == o.mapQ1 && mapK0 == o.mapK0 && mapK1 == o.mapK1;
    }
    bool operator!=(const AnalysisRequest& o) const { return !(*this == o); }
};

struct Snapshot {
    uint64_t generation = 0;                 // of the newest request the worker has finished
    std::shared_ptr<const ModelInfo> model;  // null until a model is loaded
    std::shared_ptr<const DocumentInfo> document;
    std::shared_ptr<const AnalysisResult> analysis;  // newest finished analysis (may be older than the request)
    uint64_t analysisGeneration = 0;
    std::shared_ptr<const AnalysisResult> baseline;  // all-full pattern, loss only (for Δloss)
    std::shared_ptr<const std::vector<SweepPoint>> sweep;
    LayerSpec sweepSparse;
    AnalysisRequest lastRequest;             // the request `analysis` answers
    std::string error;                       // last error; a load error stays until a load succeeds
    bool errorFromLoad = false;              // error came from opening a model or document
    bool busy = false;
    std::string task;                        // what the worker is doing, e.g. "analysing layer 3/12"
    double progress = 0;                     // 0..1 of the current task
};

class Runner {
public:
    // computeThreads > 0 caps LibTorch's CPU threads (a process-wide setting): a GUI leaves a
    // core for the UI thread.
    explicit Runner(int computeThreads = 0);
    ~Runner();  // cancels running work and joins the worker
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;

    uint64_t loadModel(const std::string& dir, const std::string& device = "cpu");
    uint64_t loadDocument(const std::string& path);
    uint64_t analyze(const AnalysisRequest& request);  // supersedes pending/running analyses
    uint64_t sweep(const LayerSpec& sparse);
    void cancel();                                      // cancels running and pending analyses/sweeps

    struct Counters {
        uint64_t analysesStarted = 0, analysesFinished = 0, analysesCancelled = 0;
    };
    Counters counters() const;

    // Called on the worker thread after every new snapshot (a GUI wakes its event loop with it).
    void setPublishHook(std::function<void()> hook);

    std::shared_ptr<const Snapshot> latest() const;
    uint64_t submitted() const;                         // generation of the newest request
    bool idle() const;                                  // nothing pending or running

private:
    struct Job;
    void run();
    void execute(const Job& job);
    // wake = false for progress only: the UI picks that up at its own (low) rate.
    void publish(const std::function<void(Snapshot&)>& edit, bool wake = true);
    bool superseded(uint64_t generation) const;
    void dropQueuedAnalyses();  // caller holds m_mutex
    uint64_t enqueue(const std::shared_ptr<Job>& job);
    static void finishLoad(Snapshot& s, uint64_t generation);

    mutable std::mutex m_mutex;
    std::condition_variable m_wake;
    std::deque<std::shared_ptr<Job>> m_queue;
    uint64_t m_generation = 0;
    uint64_t m_newestAnalysis = 0;  // generation of the newest analysis/sweep request
    uint64_t m_cancelledUpTo = 0;
    bool m_running = false;
    Counters m_counters;
    bool m_stop = false;
    std::shared_ptr<const Snapshot> m_snapshot;  // accessed with std::atomic_load/store
    std::shared_ptr<Model> m_model;              // worker thread only
    AnalysisCache m_cache;                       // worker thread only: layers of the last analysis
    int m_computeThreads = 0;
    std::mutex m_hookMutex;
    std::function<void()> m_publishHook;         // guarded by m_hookMutex
    std::thread m_thread;
};

}  // namespace spanscope
