// The worker pool: every task once, errors surface, fork leaves a usable pool.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

#include "dgen/dgen.hpp"
#include "pool.hpp"

namespace {

TEST(Pool, RunsEveryTaskOnce) {
  for (unsigned threads : {1u, 2u, 5u, 16u}) {
    std::vector<std::atomic<int>> hits(1000);
    dgen::pool::run(hits.size(), threads, [&](size_t i) { hits[i]++; });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
}

TEST(Pool, RethrowsATaskError) {
  EXPECT_THROW(dgen::pool::run(100, 4,
                               [](size_t i) {
                                 if (i == 37) throw std::runtime_error("task 37");
                               }),
               std::runtime_error);
  std::atomic<int> n{0};
  dgen::pool::run(10, 4, [&](size_t) { n++; });  // still usable
  EXPECT_EQ(n.load(), 10);
}

TEST(Pool, CallsFromManyThreadsAtOnce) {
  std::atomic<long> total{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 6; ++t)
    callers.emplace_back([&] {
      for (int k = 0; k < 50; ++k) dgen::pool::run(20, 3, [&](size_t) { total++; });
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(total.load(), 6 * 50 * 20);
}

TEST(Pool, ForkedChildCanUseThePool) {
  std::atomic<int> n{0};
  dgen::pool::run(64, 4, [&](size_t) { n++; });  // workers exist before the fork
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::atomic<int> m{0};
    alarm(10);  // a hang kills the child, failing the test below
    dgen::pool::run(64, 4, [&](size_t) { m++; });
    _exit(m.load() == 64 ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  dgen::pool::run(64, 4, [&](size_t) { n++; });  // and the parent's still works
  EXPECT_EQ(n.load(), 128);
}

// This process's threads, as the kernel counts them.
size_t threads_now() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// The pool's idle workers are joined before fork (and made again by the next job): a fork
// from a process whose calls are done is then a fork of one thread, so no lock of any
// library can be held by a thread that does not exist in the child (and Python 3.12 has
// no threads to warn about).
TEST(Pool, IdleWorkersAreJoinedBeforeFork) {
  const auto fork_and_wait = [] {
    const pid_t pid = fork();
    if (pid == 0) _exit(0);
    int status = 0;
    waitpid(pid, &status, 0);
  };
  fork_and_wait();
  // ThreadSanitizer starts a thread of its own at the first thread created: make it exist
  // before counting, so that only the pool's workers are counted.
  std::thread([] {}).join();
  const size_t without_workers = threads_now();
  dgen::pool::run(64, 4, [](size_t) {});
  ASSERT_GT(threads_now(), without_workers);  // the job started workers
  fork_and_wait();
  // A joined thread can stay listed in /proc/self/task for a moment after join() returns
  // (the kernel wakes the joiner before it removes the task), so wait up to a second for
  // the count; workers that were not joined stay for good.
  for (int i = 0; i < 200 && threads_now() != without_workers; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(threads_now(), without_workers);
}

}  // namespace

namespace {

// Runs a small job while a large one is running: the large one cannot end before
// `release` (its tasks take 5 ms each until then: minutes in all), so the small one must
// finish beside it (before, jobs ran one at a time and this waited for the large one).
void small_job_finishes_inside_a_large_one(const dgen::WorkerPlan& plan) {
  std::atomic<int> inside{0};
  std::atomic<bool> release{false};
  std::thread large([&] {
    dgen::pool::run(100000, plan, [&](size_t) {
      ++inside;
      if (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    });
  });
  while (inside.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::atomic<int> small_tasks{0};
  auto small = std::async(std::launch::async, [&] {
    dgen::pool::run(8, plan, [&](size_t) { small_tasks++; });
  });
  // Generous: the small job needs microseconds; the large one cannot end before release.
  const bool finished = small.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  release = true;
  large.join();
  small.wait();
  EXPECT_TRUE(finished) << "a small job waited for a large one";
  EXPECT_EQ(small_tasks.load(), 8);
}

TEST(Pool, ASmallJobDoesNotWaitForALargeOne) {
  dgen::WorkerPlan plan;
  plan.threads = 2;
  small_job_finishes_inside_a_large_one(plan);
}

TEST(Pool, ABoundSmallJobDoesNotWaitForALargeOne) {
  dgen::WorkerPlan plan;  // two workers bound to CPU 0: a pool of its own, fixed shares
  plan.threads = 2;
  plan.cpusets = {{0}, {0}};
  small_job_finishes_inside_a_large_one(plan);
}

TEST(Pool, BoundJobsFromManyThreadsRunEveryTaskOnce) {
  dgen::WorkerPlan plan;
  plan.threads = 3;
  plan.cpusets = {{0}};
  std::vector<std::thread> callers;
  std::atomic<bool> ok{true};
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int k = 0; k < 30; ++k) {
        std::vector<std::atomic<int>> hits(97);
        dgen::pool::run(hits.size(), plan, [&](size_t i) { hits[i]++; });
        for (auto& h : hits)
          if (h.load() != 1) ok = false;
      }
    });
  for (auto& c : callers) c.join();
  EXPECT_TRUE(ok.load());
}

// Two callers of unbound jobs are two of the threads: the pool's workers make up the rest of
// the CPUs, not more, so callers sharing the pool do not crowd each other out.
TEST(Pool, CallersAndWorkersTogetherNeverOutnumberTheCpus) {
  const unsigned cpus = dgen::available_cpus();
  if (cpus < 2) GTEST_SKIP() << "needs two CPUs";
  std::atomic<unsigned> running{0}, most{0};
  std::atomic<int> done[2] = {0, 0};
  const auto job = [&](int k) {
    dgen::pool::run(300, cpus, [&](size_t) {
      const unsigned now = ++running;
      if (done[0] >= 5 && done[1] >= 5) {  // both callers are in (tasks before: transition)
        unsigned m = most;
        while (now > m && !most.compare_exchange_weak(m, now)) {
        }
      }
      std::this_thread::sleep_for(std::chrono::microseconds(500));
      --running;
      ++done[k];
    });
  };
  std::thread a(job, 0), b(job, 1);
  a.join();
  b.join();
  EXPECT_GT(most.load(), 0u);
  EXPECT_LE(most.load(), cpus);
}

// Forks while other threads keep the pool busy; every child must use the pool and exit
// (a child that inherited a condition variable mid-use hung in pthread_cond_signal).
TEST(Pool, ForksUnderLoadNeverHang) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> load;
  for (int t = 0; t < 2; ++t)
    load.emplace_back([&] {
      while (!stop) dgen::pool::run(16, 2, [](size_t) { std::this_thread::yield(); });
    });
#ifdef __SANITIZE_THREAD__
  // TSan cannot start threads after a multi-threaded fork: its children stay on one thread.
  const int forks = 200;
  const unsigned child_threads = 1;
#else
  const int forks = 2000;
  const unsigned child_threads = 2;
#endif
  int hung = 0, failed = 0;
  for (int k = 0; k < forks && hung == 0; ++k) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(10);  // a hang ends the child with SIGALRM
      std::atomic<int> m{0};
      dgen::pool::run(32, child_threads, [&](size_t) { m++; });
      _exit(m.load() == 32 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) ++hung;
    else if (WEXITSTATUS(status) != 0) ++failed;
  }
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(hung, 0);
  EXPECT_EQ(failed, 0);
}

}  // namespace
