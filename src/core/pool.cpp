#include "pool.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "dgen/dgen.hpp"
#include "kernels/kernels.hpp"

namespace dgen::pool {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollEvery = std::chrono::milliseconds(20);

struct Job {
  const std::function<void(size_t)>* task = nullptr;
  size_t n = 0;
  unsigned workers = 0;   // pool workers [0, workers) take part
  bool fixed = false;     // worker w runs tasks [w*n/workers, (w+1)*n/workers)
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  std::mutex error_mu;

  void run_task(size_t i) {
    try {
      (*task)(i);
    } catch (...) {
      std::lock_guard lk(error_mu);
      if (!error) error = std::current_exception();
      stop = true;
    }
  }

  void work(unsigned worker) {
    if (fixed) {
      for (size_t i = n * worker / workers, end = n * (worker + 1) / workers; i < end && !stop; ++i)
        run_task(i);
      return;
    }
    for (size_t i; !stop && (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) run_task(i);
  }
};

class Pool {
 public:
  explicit Pool(std::vector<std::vector<unsigned>> cpusets) : cpusets_(std::move(cpusets)) {}

  void run(size_t n, unsigned threads, const std::function<void(size_t)>& task,
           const std::function<bool()>& interrupted) {
    JobSlot slot(*this, interrupted);
    Job job;
    job.task = &task;
    job.n = n;
    job.fixed = !cpusets_.empty();
    // Unbound: the caller is one of the threads. Bound: the caller only waits and polls.
    job.workers = job.fixed ? threads : unsigned(std::min<size_t>(threads, n)) - 1;
    grow(job.workers);
    {
      std::lock_guard lk(mu_);
      job_ = &job;
      busy_ = job.workers;
      ++generation_;
    }
    wake_.notify_all();
    bool cancelled = false;
    // Never leaves before the workers are done with `job`: a throwing poll counts as an
    // error of the job.
    const auto poll = [&] {
      if (cancelled || !interrupted) return;
      try {
        if (interrupted()) cancelled = job.stop = true;
      } catch (...) {
        std::lock_guard lk(job.error_mu);
        if (!job.error) job.error = std::current_exception();
        job.stop = true;
      }
    };
    if (!job.fixed) {
      auto next_poll = Clock::now() + kPollEvery;
      for (size_t i; !job.stop && (i = job.next.fetch_add(1, std::memory_order_relaxed)) < n;) {
        job.run_task(i);
        if (interrupted && Clock::now() >= next_poll) {
          next_poll = Clock::now() + kPollEvery;
          poll();
        }
      }
    }
    {
      std::unique_lock lk(mu_);
      while (!done_.wait_for(lk, kPollEvery, [&] { return busy_ == 0; })) {
        lk.unlock();
        poll();
        lk.lock();
      }
      job_ = nullptr;
    }
    if (job.error) std::rethrow_exception(job.error);
    if (cancelled) throw Interrupted();
  }

  void stop_all() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  // One job at a time. Waiting for the slot still answers Ctrl-C.
  class JobSlot {
   public:
    JobSlot(Pool& p, const std::function<bool()>& interrupted) : p_(p) {
      std::unique_lock lk(p.slot_mu_);
      while (p.slot_taken_) {
        if (!interrupted) {
          p.slot_free_.wait(lk);
        } else if (!p.slot_free_.wait_for(lk, kPollEvery, [&] { return !p.slot_taken_; })) {
          lk.unlock();
          if (interrupted()) throw Interrupted();
          lk.lock();
        }
      }
      p.slot_taken_ = true;
    }
    ~JobSlot() { p_.release_slot(); }
    JobSlot(const JobSlot&) = delete;
    JobSlot& operator=(const JobSlot&) = delete;

   private:
    Pool& p_;
  };

  bool try_take_slot() {
    std::lock_guard lk(slot_mu_);
    if (slot_taken_) return false;
    slot_taken_ = true;
    return true;
  }

  void release_slot() {
    {
      std::lock_guard lk(slot_mu_);
      slot_taken_ = false;
    }
    slot_free_.notify_one();
  }

  std::mutex slot_mu_;
  std::condition_variable slot_free_;
  bool slot_taken_ = false;

 private:
  void grow(unsigned count) {
    std::lock_guard lk(mu_);
    stop_ = false;
    while (workers_.size() < count) {
      const unsigned index = unsigned(workers_.size());
      workers_.emplace_back([this, index, seen = generation_] { loop(index, seen); });
    }
  }

  void loop(unsigned index, uint64_t seen) {
    if (!cpusets_.empty()) bind_thread(cpusets_[index % cpusets_.size()]);
    std::unique_lock lk(mu_);
    for (;;) {
      wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      Job* job = job_;
      if (!job || index >= job->workers) continue;
      lk.unlock();
      job->work(index);
      lk.lock();
      if (--busy_ == 0) done_.notify_all();
    }
  }

  const std::vector<std::vector<unsigned>> cpusets_;
  std::mutex mu_;  // guards the fields below
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  unsigned busy_ = 0;
  bool stop_ = false;
};

// Every pool, by CPU sets (the empty key is the shared unbound pool). Never destroyed:
// workers may outlive static destructors.
//
// At fork: idle pools are locked and their workers joined, so parent and child restart
// them on next use. A pool busy with another thread's job is not waited for (that job may
// need the GIL the forking thread holds): the parent keeps it running, the child abandons
// its copy, whose locks belong to threads that do not exist there, and makes a new one.
struct Registry {
  std::mutex mu;
  std::map<std::vector<std::vector<unsigned>>, Pool*> pools;
  std::vector<Pool*> joined;  // locked by before_fork

  Registry() { pthread_atfork(&before_fork, &in_parent, &in_child); }

  Pool& get(const std::vector<std::vector<unsigned>>& cpusets) {
    std::lock_guard lk(mu);
    Pool*& p = pools[cpusets];
    if (!p) p = new Pool(cpusets);
    return *p;
  }

  static Registry& instance() {
    static Registry* r = new Registry;
    return *r;
  }

  static void before_fork() {
    // Finish any first-use initialisation another thread may be in the middle of, so the
    // child never inherits a half-taken static guard.
    Topology::get();
    try {
      kernels::active();
    } catch (const std::invalid_argument&) {  // a bad DGEN_ISA: nothing was initialised
    }
    Registry& r = instance();
    r.mu.lock();
    r.joined.clear();
    for (auto& [key, pool] : r.pools)
      if (pool->try_take_slot()) {
        pool->stop_all();
        r.joined.push_back(pool);
      }
  }

  static void in_parent() {
    Registry& r = instance();
    for (Pool* p : r.joined) p->release_slot();
    r.mu.unlock();
  }

  static void in_child() {
    Registry& r = instance();
    for (auto& [key, pool] : r.pools) {
      if (std::find(r.joined.begin(), r.joined.end(), pool) != r.joined.end())
        pool->release_slot();
      else
        pool = new Pool(key);  // the busy one is leaked, never touched again
    }
    r.mu.unlock();
  }
};

// The fork handler is registered when the library loads, before any thread of ours exists.
[[maybe_unused]] const bool registered_at_load = (Registry::instance(), true);

}  // namespace

void run(size_t n, const WorkerPlan& plan, const std::function<void(size_t)>& task,
         const std::function<bool()>& interrupted) {
  if (n == 0) return;
  if (plan.cpusets.empty() && (plan.threads <= 1 || n == 1)) {
    // On the calling thread, with the same polling and error rules.
    auto next_poll = Clock::now() + kPollEvery;
    for (size_t i = 0; i < n; ++i) {
      task(i);
      if (interrupted && i + 1 < n && Clock::now() >= next_poll) {
        next_poll = Clock::now() + kPollEvery;
        if (interrupted()) throw Interrupted();
      }
    }
    return;
  }
  Registry::instance().get(plan.cpusets).run(n, std::max(1u, plan.threads), task, interrupted);
}

void run(size_t n, unsigned threads, const std::function<void(size_t)>& task,
         const std::function<bool()>& interrupted) {
  WorkerPlan plan;
  plan.threads = threads;
  run(n, plan, task, interrupted);
}

}  // namespace dgen::pool
