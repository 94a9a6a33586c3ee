// The worker pool.
//
// Protocol (who may hold what; each rule has a test in tests/cpp/pool_test.cpp that breaks
// it, named in brackets):
// - Several jobs may be active in one pool at once, from different calling threads. Each
//   job is a set of tasks; a worker takes one task at a time from any active job that wants
//   it (round-robin while more than one is active), so callers share the CPUs and a small
//   job never waits for a large one to end [ASmallJobDoesNotWaitForALargeOne, and its
//   Bound twin].
// - Unbound jobs: the caller takes tasks of its own job too, so a job progresses even when
//   every worker is busy elsewhere. Callers taking tasks count as threads: worker w takes a
//   task only while w + those callers < the CPUs, so callers sharing the pool are not
//   crowded out by more threads than CPUs [CallersAndWorkersTogetherNeverOutnumberTheCpus]. Bound jobs (NUMA): worker w runs only its fixed share
//   of a job's tasks, so the pages it touched first stay its own; the caller waits.
// - Pool::mu_ guards the job list, the workers and changes of Job::inside (read without it
//   only to decide whether to wait longer); it is never held while a
//   task or the caller's poll runs (the poll may take Python's GIL)
//   [CallsFromManyThreadsAtOnce; tests/python: test_small_calls_do_not_deadlock_behind_a_
//   busy_pool].
// - A caller leaves run() only once no worker is inside its job (Job::inside == 0), so the
//   job, which lives on the caller's stack, outlives every use; a throwing task or poll
//   stops the job and its own exception reaches the caller [RethrowsATaskError,
//   Interrupt.AThrowingPollLeavesThePoolUsable].
// - Pools are never destroyed: workers may outlive static destructors.
//
// Fork protocol: the one pthread_atfork handler of the library (Registry, below,
// registered at load before any thread of ours exists) covers every process-wide lock;
// a new one must join it here, with a test that forks while another thread holds it.
// - prepare: (1) finishes every first-use initialisation whose static guard is a lock
//   (Topology::get, with hwloc's topology; kernels::active), so no child inherits one
//   half taken; (2) takes Registry::mu; (3) joins the workers of every idle pool, so a
//   fork from a process whose calls are done is a fork of one thread and no lock of any
//   library can be held by a thread that is gone in the child (Python 3.12 then has no
//   threads to warn about either) [IdleWorkersAreJoinedBeforeFork]; jobs that start
//   until the fork is over run on their caller alone (a bound one unpinned: the bytes are
//   the same); a pool busy with another thread's job is not waited for (that job may need
//   the GIL the forking thread holds); (4) takes the lock of allocate()'s recycler of
//   freed buffers (topology.cpp), last, since its holders take no other lock
//   [Recycler.ForksWhileAnotherThreadAllocatesNeverHang, in memory_test.cpp].
// - parent: releases them in reverse order.
// - child: makes Registry::mu and the recycler's lock anew (the forking thread held them),
//   and touches no pool lock or condition variable copied from the parent (a waiter that
//   does not exist there made pthread_cond_signal hang): it abandons every pool and makes
//   new ones on first use [ForkedChildCanUseThePool, ForksUnderLoadNeverHang].
// Not process-wide, and why they need no handler: a Job's locks and write_range's
// producer lock live on a caller's stack (the call does not exist in the child); a
// Stream's lock is taken only with Python's GIL held, which the forking thread holds; a
// Python Verifier's lock is replaced on first use in the child (src/python/protocol.cpp). No
// table is made on first use under a lock (a Dataset makes its early versions when it is
// made): a child could share such a lock, taken for good, with the parent's objects.
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
// Waits shorter than this spin instead of sleeping: waking a sleeping thread takes tens of
// microseconds here, as long as a 1 MiB task, so back-to-back small calls would otherwise
// run slower on two threads than on one.
constexpr auto kSpin = std::chrono::microseconds(100);

// A worker kept off by callers looks again this often for a CPU they left; callers that
// filled every CPU keep the workers off this long after.
constexpr auto kRecheck = std::chrono::milliseconds(10);
constexpr auto kCrowded = std::chrono::milliseconds(10);

// Spins until done() or kSpin has passed; true if done().
template <class Done>
bool spin_until(Done done) {
  const auto end = Clock::now() + kSpin;
  for (unsigned k = 1;; ++k) {
    if (done()) return true;
    if (k % 64 == 0 && Clock::now() >= end) return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

// Runs every task on the calling thread, polling as a pooled job does.
void run_here(size_t n, const std::function<void(size_t)>& task,
              const std::function<bool()>& interrupted) {
  auto next_poll = Clock::now() + kPollEvery;
  for (size_t i = 0; i < n; ++i) {
    task(i);
    if (interrupted && i + 1 < n && Clock::now() >= next_poll) {
      next_poll = Clock::now() + kPollEvery;
      if (interrupted()) throw Interrupted();
    }
  }
}

struct Job {
  const std::function<void(size_t)>* task = nullptr;
  size_t n = 0;
  unsigned workers = 0;  // pool workers [0, workers) take part
  bool fixed = false;    // worker w runs tasks [w*n/workers, (w+1)*n/workers)
  std::atomic<size_t> next{0};
  std::vector<std::atomic<size_t>> cursors;  // fixed: worker w's next task
  std::atomic<bool> stop{false};
  std::atomic<unsigned> inside{0};  // workers that picked it and have not left (Pool::mu_)
  std::exception_ptr error;
  std::mutex error_mu;

  size_t share_end(unsigned w) const { return n * (w + 1) / workers; }

  bool wants(unsigned w) const {
    if (w >= workers || stop.load(std::memory_order_relaxed)) return false;
    return fixed ? cursors[w].load(std::memory_order_relaxed) < share_end(w)
                 : next.load(std::memory_order_relaxed) < n;
  }

  bool finished() const {
    if (stop) return true;
    if (!fixed) return next.load() >= n;
    for (unsigned w = 0; w < workers; ++w)
      if (cursors[w].load() < share_end(w)) return false;
    return true;
  }

  // Claims the next task for worker w (the caller uses w = 0 of an unbound job).
  bool take(unsigned w, size_t& i) {
    if (stop.load(std::memory_order_relaxed)) return false;
    if (fixed) return (i = cursors[w].fetch_add(1, std::memory_order_relaxed)) < share_end(w);
    return (i = next.fetch_add(1, std::memory_order_relaxed)) < n;
  }

  void fail(std::exception_ptr e) {
    std::lock_guard lk(error_mu);
    if (!error) error = e;
    stop = true;
  }

  void run_task(size_t i) {
    try {
      (*task)(i);
    } catch (...) {
      fail(std::current_exception());
    }
  }
};

class Pool {
 public:
  explicit Pool(std::vector<std::vector<unsigned>> cpusets)
      : cpusets_(std::move(cpusets)), cpus_(std::max(1u, available_cpus())) {}

  void run(size_t n, unsigned threads, const std::function<void(size_t)>& task,
           const std::function<bool()>& interrupted) {
    Job job;
    job.task = &task;
    job.n = n;
    job.fixed = !cpusets_.empty();
    // Unbound: the caller is one of the threads. Bound: the caller only waits and polls.
    job.workers = job.fixed ? threads : unsigned(std::min<size_t>(threads, n)) - 1;
    if (job.fixed) {
      job.cursors = std::vector<std::atomic<size_t>>(threads);
      for (unsigned w = 0; w < threads; ++w) job.cursors[w] = n * w / threads;
    }
    bool forking, wake = false;
    {
      std::lock_guard lk(mu_);
      forking = forking_;
      if (!forking) {
        grow(job.workers);
        jobs_.push_back(&job);
        active_ = jobs_.size();
        jobs_started_.fetch_add(1, std::memory_order_relaxed);
        const unsigned callers = job.fixed ? 0 : ++callers_;
        if (callers >= cpus_)
          crowded_until_ = (Clock::now() + kCrowded).time_since_epoch().count();
        // Wake the workers only when one may help: not while callers occupy every CPU.
        // Decided here, under the lock: read after it, two callers starting together
        // could each see the other and leave sleeping workers asleep for good.
        wake = job.workers > 0 && callers < cpus_;
      }
    }
    if (forking) return run_here(n, task, interrupted);
    if (wake) wake_.notify_all();
    bool cancelled = false;
    const auto poll = [&] {
      if (cancelled || !interrupted) return;
      try {
        if (interrupted()) cancelled = job.stop = true;
      } catch (...) {
        job.fail(std::current_exception());
      }
    };
    if (!job.fixed) {
      auto next_poll = Clock::now() + kPollEvery;
      for (size_t i; job.take(0, i);) {
        job.run_task(i);
        if (interrupted && Clock::now() >= next_poll) {
          next_poll = Clock::now() + kPollEvery;
          poll();
        }
      }
    }
    if (!job.fixed) --callers_;  // its thread is likely back at once with the next call
    spin_until([&] { return job.inside.load(std::memory_order_acquire) == 0 && job.finished(); });
    {
      std::unique_lock lk(mu_);
      while (!done_.wait_for(lk, kPollEvery, [&] { return job.inside == 0 && job.finished(); })) {
        lk.unlock();
        poll();
        lk.lock();
      }
      jobs_.erase(std::find(jobs_.begin(), jobs_.end(), &job));
      active_ = jobs_.size();
    }
    if (job.error) std::rethrow_exception(job.error);
    if (cancelled) throw Interrupted();
  }

  // Before fork(): joins the workers if no job is active; until after_fork(), new jobs run
  // on their callers.
  void quiesce() {
    std::vector<std::thread> idle;
    {
      std::lock_guard lk(mu_);
      forking_ = true;
      if (!jobs_.empty()) return;
      stop_ = true;
      idle.swap(workers_);
    }
    wake_.notify_all();
    for (auto& t : idle) t.join();
    std::lock_guard lk(mu_);
    stop_ = false;
  }

  void after_fork() {
    std::lock_guard lk(mu_);
    forking_ = false;
  }

 private:
  void grow(unsigned count) {  // mu_ held
    while (workers_.size() < count) {
      const unsigned index = unsigned(workers_.size());
      workers_.emplace_back([this, index] { loop(index); });
    }
  }

  // Whether worker `index` may run a task: callers at work count as threads too, and
  // callers that filled every CPU lately are taken to be back soon (their threads come
  // and go between calls; a worker joining in such a gap makes them wait for its task).
  bool may_work(unsigned index) const {
    return !cpusets_.empty() ||
           (index + callers_.load(std::memory_order_relaxed) < cpus_ &&
            Clock::now().time_since_epoch().count() >=
                crowded_until_.load(std::memory_order_relaxed));
  }

  // The next active job that wants worker `index`, taking turns among them.
  Job* pick(unsigned index, size_t& turn) {  // mu_ held
    if (!may_work(index)) return nullptr;
    for (size_t k = 0; k < jobs_.size(); ++k) {
      Job* j = jobs_[(turn + k) % jobs_.size()];
      if (j->wants(index)) {
        turn += k + 1;
        return j;
      }
    }
    return nullptr;
  }

  void loop(unsigned index) {
    if (!cpusets_.empty()) bind_thread(cpusets_[index % cpusets_.size()]);
    size_t turn = 0;
    std::unique_lock lk(mu_);
    for (;;) {
      Job* job = pick(index, turn);
      if (!job && !stop_ && may_work(index)) {  // the next call may come at once: spin first
        const uint64_t seen = jobs_started_.load(std::memory_order_relaxed);
        lk.unlock();
        spin_until([&] { return jobs_started_.load(std::memory_order_relaxed) != seen; });
        lk.lock();
      }
      while (!stop_ && !job && !(job = pick(index, turn))) {
        if (jobs_.empty()) wake_.wait(lk);
        else wake_.wait_for(lk, kRecheck);  // callers leave their CPUs without a word
      }
      if (stop_) return;
      ++job->inside;
      lk.unlock();
      for (size_t i; job->take(index, i);) {
        job->run_task(i);
        if (active_.load(std::memory_order_relaxed) > 1 || !may_work(index))
          break;  // one task each in turn; or a caller needs this CPU
      }
      lk.lock();
      if (--job->inside == 0 && job->finished()) done_.notify_all();
    }
  }

  const std::vector<std::vector<unsigned>> cpusets_;
  std::mutex mu_;  // guards the fields below
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  std::vector<Job*> jobs_;
  std::atomic<size_t> active_{0};  // jobs_.size(), read without mu_ by working workers
  const unsigned cpus_;              // CPUs this process could use when the pool was made
  std::atomic<uint64_t> jobs_started_{0};  // what a spinning worker watches
  std::atomic<unsigned> callers_{0};  // callers taking tasks of unbound jobs
  std::atomic<Clock::rep> crowded_until_{0};  // workers stay off until then (see may_work)
  bool stop_ = false;
  bool forking_ = false;
};

// Every pool, by CPU sets (the empty key is the shared unbound pool). See the protocol above.
struct Registry {
  std::mutex mu;
  std::map<std::vector<std::vector<unsigned>>, Pool*> pools;

  Pool& get(const std::vector<std::vector<unsigned>>& cpusets) {
    std::lock_guard lk(mu);
    Pool*& p = pools[cpusets];
    if (!p) p = new Pool(cpusets);
    return *p;
  }

  static Registry& instance() {
    static Registry* r = [] {
      pthread_atfork(&before_fork, &in_parent, &in_child);
      return new Registry;
    }();
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
    for (auto& [key, pool] : r.pools) pool->quiesce();
    recycler_before_fork();  // last: its holders take no other lock
  }

  static void in_parent() {
    recycler_after_fork(false);
    Registry& r = instance();
    for (auto& [key, pool] : r.pools) pool->after_fork();
    r.mu.unlock();
  }

  static void in_child() {
    recycler_after_fork(true);
    Registry& r = instance();
    new (&r.mu) std::mutex;  // held by this thread in the parent; a fresh one here
    for (auto& [key, pool] : r.pools) pool = new Pool(key);  // the old ones are leaked
  }
};

// The fork handler is registered when the library loads, before any thread of ours exists.
[[maybe_unused]] const bool registered_at_load = (Registry::instance(), true);

}  // namespace

void run(size_t n, const WorkerPlan& plan, const std::function<void(size_t)>& task,
         const std::function<bool()>& interrupted) {
  if (n == 0) return;
  if (plan.cpusets.empty() && (plan.threads <= 1 || n == 1)) return run_here(n, task, interrupted);
  Registry::instance().get(plan.cpusets).run(n, std::max(1u, plan.threads), task, interrupted);
}

void run(size_t n, unsigned threads, const std::function<void(size_t)>& task,
         const std::function<bool()>& interrupted) {
  WorkerPlan plan;
  plan.threads = threads;
  run(n, plan, task, interrupted);
}

}  // namespace dgen::pool
