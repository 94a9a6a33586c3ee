// The worker pool: every task once, errors surface, fork leaves a usable pool.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
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

}  // namespace
