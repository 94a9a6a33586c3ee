// Topology detection and the worker-to-CPU plan.
#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

#include "dgen/dgen.hpp"
#include "dgen/topology.hpp"
#include "pool.hpp"

namespace {

// A pretend machine: `nodes` nodes of `per_node` CPUs, numbered consecutively.
dgen::Topology machine(unsigned nodes, unsigned per_node) {
  dgen::Topology t;
  t.source = "test";
  t.can_bind = true;
  for (unsigned n = 0; n < nodes; ++n) {
    dgen::NumaNode node{n, {}, 1ull << 30};
    for (unsigned c = 0; c < per_node; ++c) node.cpus.push_back(n * per_node + c);
    t.nodes.push_back(node);
  }
  t.logical_cpus = t.physical_cores = nodes * per_node;
  return t;
}

std::vector<unsigned> all_cpus(unsigned n) {
  std::vector<unsigned> v(n);
  for (unsigned i = 0; i < n; ++i) v[i] = i;
  return v;
}

TEST(Plan, UmaAndSingleNodeAutoAreUnbound) {
  for (auto mode : {dgen::NumaMode::Uma, dgen::NumaMode::Auto}) {
    const auto plan = dgen::plan_workers(machine(1, 4), mode, {}, 0, all_cpus(4));
    EXPECT_TRUE(plan.cpusets.empty());
    EXPECT_EQ(plan.threads, 4u);
  }
  EXPECT_TRUE(dgen::plan_workers(machine(4, 2), dgen::NumaMode::Uma, {}, 3, all_cpus(8)).cpusets.empty());
}

TEST(Plan, AutoSpreadsWorkersRoundRobinOverNodes) {
  const auto plan = dgen::plan_workers(machine(2, 3), dgen::NumaMode::Auto, {}, 0, all_cpus(6));
  EXPECT_EQ(plan.threads, 6u);
  const std::vector<std::vector<unsigned>> want{{0}, {3}, {1}, {4}, {2}, {5}};
  EXPECT_EQ(plan.cpusets, want);
  const auto four = dgen::plan_workers(machine(4, 2), dgen::NumaMode::Auto, {}, 0, all_cpus(8));
  const std::vector<std::vector<unsigned>> want4{{0}, {2}, {4}, {6}, {1}, {3}, {5}, {7}};
  EXPECT_EQ(four.cpusets, want4);
}

TEST(Plan, ForceBindsEvenOnOneNode) {
  const auto plan = dgen::plan_workers(machine(1, 2), dgen::NumaMode::Force, {}, 0, all_cpus(2));
  const std::vector<std::vector<unsigned>> want{{0}, {1}};
  EXPECT_EQ(plan.cpusets, want);
}

TEST(Plan, NumaNodeBindsEveryWorkerToThatNode) {
  const auto plan = dgen::plan_workers(machine(4, 2), dgen::NumaMode::Auto, 2u, 0, all_cpus(8));
  ASSERT_EQ(plan.cpusets.size(), 1u);
  EXPECT_EQ(plan.cpusets[0], (std::vector<unsigned>{4, 5}));
  EXPECT_EQ(plan.threads, 2u);
  EXPECT_EQ(dgen::plan_workers(machine(4, 2), dgen::NumaMode::Auto, 2u, 7, all_cpus(8)).threads, 7u);
}

TEST(Plan, TheAffinityMaskLimitsTheDefault) {
  // taskset -c 0: one worker by default, on every mode.
  EXPECT_EQ(dgen::plan_workers(machine(1, 4), dgen::NumaMode::Auto, {}, 0, {0}).threads, 1u);
  const auto plan = dgen::plan_workers(machine(2, 2), dgen::NumaMode::Auto, {}, 0, {0, 1});
  EXPECT_EQ(plan.threads, 2u);
  EXPECT_EQ(plan.cpusets, (std::vector<std::vector<unsigned>>{{0}, {1}}));
}

TEST(Plan, AMissingNodeIsRefusedNamingTheAvailableOnes) {
  try {
    dgen::plan_workers(machine(2, 2), dgen::NumaMode::Auto, 5u, 0, all_cpus(4));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[0, 1]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("5"), std::string::npos) << e.what();
  }
}

TEST(Topology, AStreamOnAMissingNodeIsRefused) {
  const dgen::Params p{1, 1 << 20, 1, 1, 131072};
  EXPECT_THROW(dgen::Stream(p, {.numa_node = 100000u}), std::invalid_argument);
  EXPECT_NO_THROW(dgen::Stream(p, {.numa_node = dgen::Topology::get().nodes[0].id}));
}

TEST(Topology, DetectsThisMachineOrTheRequestedOne) {
  const dgen::Topology& t = dgen::Topology::get();
  ASSERT_GE(t.nodes.size(), 1u);
  if (const char* want = std::getenv("DGEN_EXPECT_NODES")) {  // set with HWLOC_SYNTHETIC
    EXPECT_EQ(t.nodes.size(), std::stoul(want));
    EXPECT_FALSE(t.can_bind);
    EXPECT_EQ(t.source, "hwloc-synthetic");
    std::set<unsigned> cpus;
    for (const auto& n : t.nodes) {
      EXPECT_FALSE(n.cpus.empty());
      for (unsigned c : n.cpus) EXPECT_TRUE(cpus.insert(c).second) << "cpu on two nodes";
    }
  } else {
    EXPECT_TRUE(t.can_bind);
    EXPECT_GE(t.logical_cpus, t.physical_cores);
  }
}

TEST(Topology, BoundWorkersRunOnTheirNodesCpus) {
  const dgen::Topology& t = dgen::Topology::get();
  if (!t.can_bind) GTEST_SKIP() << "pretend topology: binding is a no-op";
  const auto allowed = dgen::allowed_cpus();
  const auto plan = dgen::plan_workers(t, dgen::NumaMode::Auto, t.nodes[0].id, 0, allowed);
  std::mutex mu;
  std::set<int> seen;
  dgen::pool::run(64, plan, [&](size_t) {
    const int cpu = sched_getcpu();
    std::lock_guard lk(mu);
    seen.insert(cpu);
  });
  for (int cpu : seen)
    EXPECT_NE(std::find(plan.cpusets[0].begin(), plan.cpusets[0].end(), unsigned(cpu)),
              plan.cpusets[0].end()) << "worker ran on cpu " << cpu;
  // Force: each worker on its one CPU, and the data is the same as unbound.
  const auto forced = dgen::plan_workers(t, dgen::NumaMode::Force, {}, 0, allowed);
  std::vector<std::set<int>> per_task(forced.cpusets.size() * 4);
  dgen::pool::run(per_task.size(), forced, [&](size_t i) { per_task[i].insert(sched_getcpu()); });
  for (size_t i = 0; i < per_task.size(); ++i) {
    const unsigned worker = unsigned(i * forced.threads / per_task.size());
    EXPECT_EQ(*per_task[i].begin(), int(forced.cpusets[worker % forced.cpusets.size()][0]));
  }
}

TEST(Topology, NumaModesGiveTheSameBytes) {
  const dgen::Dataset ds(dgen::Params{3, 9'000'000, 2, 2, 131072});
  std::vector<uint8_t> a(ds.size()), b(ds.size()), c(ds.size());
  dgen::fill(ds, 0, a, {.numa_mode = dgen::NumaMode::Uma});
  dgen::fill(ds, 0, b, {.numa_mode = dgen::NumaMode::Force});
  dgen::fill(ds, 0, c, {.numa_node = dgen::Topology::get().nodes[0].id});
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

}  // namespace

namespace {

TEST(Memory, LargeBuffersAreHugePageAlignedAndRecycled) {
  const uint64_t n = 3 * (1u << 20) + 5;
  auto* a = static_cast<uint8_t*>(dgen::allocate(n, std::nullopt));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % (2u << 20), 0u);
  a[0] = 1;
  a[n - 1] = 2;  // the whole length is mapped
  dgen::free_memory(a, n, std::nullopt);
  void* b = dgen::allocate(n, std::nullopt);
  EXPECT_EQ(b, a) << "a freed buffer of the same size is reused";
  void* c = dgen::allocate(n, 0u);  // another node key: not that buffer
  EXPECT_NE(c, b);
  dgen::free_memory(b, n, std::nullopt);
  dgen::free_memory(c, n, 0u);
  auto* small = static_cast<uint8_t*>(dgen::allocate(1, std::nullopt));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small) % 4096, 0u);
  dgen::free_memory(small, 1, std::nullopt);
}

}  // namespace
