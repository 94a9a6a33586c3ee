#include "pool.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "dgen/dgen.hpp"

namespace dgen::pool {
namespace {

struct Job {
  const std::function<void(size_t)>* task = nullptr;
  size_t n = 0;
  unsigned helpers = 0;  // workers [0, helpers) take part
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  bool cancelled = false;
  static constexpr auto kPollEvery = std::chrono::milliseconds(20);

  // The caller's loop also polls `interrupted`; workers pass nothing.
  void work(const std::function<bool()>* interrupted = nullptr) {
    using clock = std::chrono::steady_clock;
    auto next_poll = clock::now() + kPollEvery;
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) {
      if (interrupted && *interrupted && clock::now() >= next_poll) {
        next_poll = clock::now() + kPollEvery;
        if ((*interrupted)()) {
          next.store(n, std::memory_order_relaxed);
          cancelled = true;
          return;
        }
      }
      try {
        (*task)(i);
      } catch (...) {
        std::lock_guard lk(error_mu);
        if (!error) error = std::current_exception();
        next.store(n, std::memory_order_relaxed);  // stop handing out tasks
      }
    }
  }
};

class Pool {
 public:
  Pool() { pthread_atfork(&Pool::before_fork, &Pool::after_fork, &Pool::after_fork); }

  void run(size_t n, unsigned threads, const std::function<void(size_t)>& task,
           const std::function<bool()>& interrupted) {
    std::lock_guard one_job(run_mu_);
    Job job;
    job.task = &task;
    job.n = n;
    job.helpers = unsigned(std::min<size_t>(threads, n)) - 1;
    grow(job.helpers);
    {
      std::lock_guard lk(mu_);
      job_ = &job;
      busy_ = job.helpers;
      ++generation_;
    }
    wake_.notify_all();
    job.work(&interrupted);
    {
      std::unique_lock lk(mu_);
      done_.wait(lk, [&] { return busy_ == 0; });
      job_ = nullptr;
    }
    if (job.error) std::rethrow_exception(job.error);
    if (job.cancelled) throw Interrupted();
  }

  static Pool& get() {
    static Pool* p = new Pool;  // never destroyed: workers may outlive static destructors
    return *p;
  }

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
    std::unique_lock lk(mu_);
    for (;;) {
      wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      Job* job = job_;
      if (!job || index >= job->helpers) continue;
      lk.unlock();
      job->work();
      lk.lock();
      if (--busy_ == 0) done_.notify_all();
    }
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

  static void before_fork() {
    get().run_mu_.lock();  // waits for the running job
    get().stop_all();
  }
  static void after_fork() { get().run_mu_.unlock(); }

  std::mutex run_mu_;  // one job at a time
  std::mutex mu_;      // guards the fields below
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  unsigned busy_ = 0;
  bool stop_ = false;
};

}  // namespace

void run(size_t n, unsigned threads, const std::function<void(size_t)>& task,
         const std::function<bool()>& interrupted) {
  if (n == 0) return;
  if (threads <= 1 || n == 1) {
    Job job;  // inline, with the same polling and error rules
    job.task = &task;
    job.n = n;
    job.work(&interrupted);
    if (job.error) std::rethrow_exception(job.error);
    if (job.cancelled) throw Interrupted();
    return;
  }
  Pool::get().run(n, threads, task, interrupted);
}

}  // namespace dgen::pool

