// How much memory a call may take before the kernel's OOM killer would step in.
//
// Where the kernel overcommits (vm.overcommit_memory=1, common on servers and Kubernetes
// nodes) a huge mapping succeeds and the process is killed only once it touches the pages;
// inside a container the cgroup's limit, often far below the machine's memory, is the one
// that kills. So every allocation made for a caller is checked first against the smallest
// of: MemAvailable (/proc/meminfo), each enclosing cgroup's limit minus its working set
// (v2 memory.max - memory.current + inactive_file; v1 memory.limit_in_bytes likewise), and
// RLIMIT_AS / RLIMIT_DATA minus what the process already maps.
//
// The check reads a few small files (tens of microseconds), so requests below
// kMemoryCheckFrom are not checked. DGEN_SKIP_MEMORY_CHECK=1 turns it off.
#pragma once

#include <cstdint>
#include <new>
#include <string>

namespace dgen {

inline constexpr uint64_t kMemoryCheckFrom = 64ull << 20;

// A request that cannot be had; what() names the request and the limit that refused it.
class OutOfMemory : public std::bad_alloc {
 public:
  explicit OutOfMemory(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// Where the limits are read from; tests point these at files of their own.
struct MemorySources {
  std::string meminfo = "/proc/meminfo";
  std::string self_cgroup = "/proc/self/cgroup";
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string self_status = "/proc/self/status";  // VmSize and VmData, for the rlimits
  bool rlimits = true;                            // getrlimit(RLIMIT_AS, RLIMIT_DATA)
};

struct MemoryHeadroom {
  uint64_t bytes = UINT64_MAX;  // what may still be allocated; UINT64_MAX: nothing limits
  std::string limited_by;       // the limit that gives `bytes`, e.g. "cgroup limit 120 GiB, 2 GiB in use"
  std::string readings;         // every limit found, for `dgen info` and error messages
};

MemoryHeadroom memory_headroom(const MemorySources& sources = {});

// Throws OutOfMemory when `bytes` exceed the headroom: "asked 1 TiB; 118 GiB available
// (cgroup limit 120 GiB, 2 GiB in use)". Does nothing for requests below kMemoryCheckFrom
// or when DGEN_SKIP_MEMORY_CHECK=1.
void check_memory(uint64_t bytes, const MemorySources& sources = {});

// "1 TiB", "118.2 GiB", "4096 B": sizes in messages.
std::string format_bytes(uint64_t bytes);

}  // namespace dgen
