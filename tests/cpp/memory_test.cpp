// Memory headroom read from fake /proc and cgroup files, and the check built on it.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "dgen/memory.hpp"
#include "dgen/topology.hpp"

namespace fs = std::filesystem;

namespace {

constexpr uint64_t MiB = 1ull << 20, GiB = 1ull << 30;

// A fake /proc and /sys/fs/cgroup in a temporary directory.
class FakeMachine : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dgen-memory-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    src_.meminfo = (dir_ / "meminfo").string();
    src_.self_cgroup = (dir_ / "cgroup").string();
    src_.cgroup_root = (dir_ / "sys").string();
    src_.self_status = (dir_ / "status").string();
    src_.rlimits = false;
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const fs::path& rel, const std::string& text) {
    fs::create_directories((dir_ / rel).parent_path());
    std::ofstream(dir_ / rel) << text;
  }

  fs::path dir_;
  dgen::MemorySources src_;
};

TEST_F(FakeMachine, MemAvailableIsTheHeadroomWithoutOtherLimits) {
  write("meminfo", "MemTotal:  4194304 kB\nMemFree:  10 kB\nMemAvailable:  1048576 kB\n");
  const auto h = dgen::memory_headroom(src_);
  EXPECT_EQ(h.bytes, 1 * GiB);
  EXPECT_EQ(h.limited_by, "MemAvailable 1 GiB");
}

TEST_F(FakeMachine, NothingReadableMeansNoLimit) {
  EXPECT_EQ(dgen::memory_headroom(src_).bytes, UINT64_MAX);
}

TEST_F(FakeMachine, CgroupV2LimitOfAnAncestorCountsWithReclaimableCacheGivenBack) {
  write("meminfo", "MemAvailable: 104857600 kB\n");  // 100 GiB on the machine
  write("cgroup", "0::/pod/app\n");
  write("sys/pod/app/memory.max", "max\n");
  write("sys/pod/app/memory.current", "1000\n");
  write("sys/pod/memory.max", std::to_string(512 * MiB) + "\n");
  write("sys/pod/memory.current", std::to_string(192 * MiB) + "\n");
  write("sys/pod/memory.stat", "anon 1\nfile 2\ninactive_file " + std::to_string(64 * MiB) + "\n");
  const auto h = dgen::memory_headroom(src_);
  EXPECT_EQ(h.bytes, 384 * MiB);
  EXPECT_EQ(h.limited_by, "cgroup limit 512 MiB, 128 MiB in use");
  EXPECT_NE(h.readings.find("MemAvailable 100 GiB"), std::string::npos) << h.readings;
}

TEST_F(FakeMachine, CgroupV1MemoryHierarchyIsRead) {
  write("cgroup", "9:name=systemd:/\n4:cpu,memory:/job\n1:cpuset:/\n");
  write("sys/memory/job/memory.limit_in_bytes", std::to_string(2 * GiB) + "\n");
  write("sys/memory/job/memory.usage_in_bytes", std::to_string(GiB / 2) + "\n");
  write("sys/memory/job/memory.stat", "inactive_file 5\ntotal_inactive_file 0\n");
  // The root's "limit" is v1's way of writing none.
  write("sys/memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(dgen::memory_headroom(src_).bytes, 3 * GiB / 2);
}

TEST_F(FakeMachine, InsideACgroupNamespaceTheMountTopIsOurOwnCgroup) {
  write("cgroup", "0::/not/visible/here\n");
  write("sys/memory.max", std::to_string(256 * MiB) + "\n");
  write("sys/memory.current", "0\n");
  EXPECT_EQ(dgen::memory_headroom(src_).bytes, 256 * MiB);
}

TEST_F(FakeMachine, UsageAboveTheLimitLeavesNothing) {
  write("cgroup", "0::/\n");
  write("sys/memory.max", std::to_string(256 * MiB) + "\n");
  write("sys/memory.current", std::to_string(300 * MiB) + "\n");
  EXPECT_EQ(dgen::memory_headroom(src_).bytes, 0u);
}

TEST_F(FakeMachine, ARequestOverTheHeadroomThrowsABadAllocNamingBoth) {
  write("meminfo", "MemAvailable: 123904 kB\n");  // 121 MiB
  write("cgroup", "0::/\n");
  write("sys/memory.max", std::to_string(120 * GiB) + "\n");
  write("sys/memory.current", "0\n");
  try {
    dgen::check_memory(1ull << 40, src_);
    FAIL() << "1 TiB was not refused";
  } catch (const std::bad_alloc& e) {
    EXPECT_STREQ(e.what(),
                 "asked 1 TiB (1099511627776 bytes); 121 MiB available (MemAvailable 121 MiB); "
                 "DGEN_SKIP_MEMORY_CHECK=1 skips this check");
  }
  EXPECT_NO_THROW(dgen::check_memory(121 * MiB, src_));
  EXPECT_THROW(dgen::check_memory(121 * MiB + 1, src_), dgen::OutOfMemory);
}

TEST_F(FakeMachine, SmallRequestsAreNotChecked) {
  write("meminfo", "MemAvailable: 0 kB\n");
  EXPECT_NO_THROW(dgen::check_memory(dgen::kMemoryCheckFrom - 1, src_));
  EXPECT_THROW(dgen::check_memory(dgen::kMemoryCheckFrom, src_), dgen::OutOfMemory);
}

TEST_F(FakeMachine, TheEnvironmentCanTurnTheCheckOff) {
  write("meminfo", "MemAvailable: 0 kB\n");
  setenv("DGEN_SKIP_MEMORY_CHECK", "1", 1);
  EXPECT_NO_THROW(dgen::check_memory(1ull << 40, src_));
  setenv("DGEN_SKIP_MEMORY_CHECK", "0", 1);
  EXPECT_THROW(dgen::check_memory(1ull << 40, src_), dgen::OutOfMemory);
  unsetenv("DGEN_SKIP_MEMORY_CHECK");
}

TEST(Memory, AllocatingMoreThanTheMachineHasThrowsBeforeTouchingIt) {
  // 1 PiB: refused by the check whatever the kernel's overcommit setting.
  try {
    dgen::allocate(1ull << 50, std::nullopt);
    FAIL() << "1 PiB was allocated";
  } catch (const dgen::OutOfMemory& e) {
    EXPECT_NE(std::string(e.what()).find("asked 1 PiB"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("available"), std::string::npos) << e.what();
  }
}

TEST(Memory, TheRealMachineHasAFiniteHeadroom) {
  const auto h = dgen::memory_headroom();
  EXPECT_LT(h.bytes, UINT64_MAX);
  EXPECT_NE(h.readings.find("MemAvailable"), std::string::npos) << h.readings;
}

TEST(Memory, SizesInMessagesUseBinaryUnits) {
  EXPECT_EQ(dgen::format_bytes(0), "0 B");
  EXPECT_EQ(dgen::format_bytes(1023), "1023 B");
  EXPECT_EQ(dgen::format_bytes(4096), "4 KiB");
  EXPECT_EQ(dgen::format_bytes(1ull << 40), "1 TiB");
  EXPECT_EQ(dgen::format_bytes(3 * GiB / 2), "1.5 GiB");
  EXPECT_EQ(dgen::format_bytes(UINT64_MAX), "16.0 EiB");
}

}  // namespace

namespace {

// Forks while another thread allocates and frees buffers of one size as fast as it can, so
// the recycler's lock is held most of the time; every child allocates at once. A child that
// inherited the lock held by a thread that does not exist there hung in its first
// allocation (the lock belongs to the fork protocol: src/core/pool.cpp).
TEST(Recycler, ForksWhileAnotherThreadAllocatesNeverHang) {
  std::atomic<bool> stop{false};
  std::thread hammer([&] {
    while (!stop) dgen::free_memory(dgen::allocate(1 << 20, std::nullopt), 1 << 20, std::nullopt);
  });
  int hung = 0, failed = 0;
  for (int k = 0; k < 300 && hung == 0; ++k) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(10);  // a hang ends the child with SIGALRM
      void* p = dgen::allocate(1 << 20, std::nullopt);
      dgen::free_memory(p, 1 << 20, std::nullopt);
      _exit(p ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) ++hung;
    else if (WEXITSTATUS(status) != 0) ++failed;
  }
  stop = true;
  hammer.join();
  EXPECT_EQ(hung, 0);
  EXPECT_EQ(failed, 0);
}

}  // namespace
