// Machine topology and where worker threads run. hwloc stays behind this header.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dgen {

struct NumaNode {
  unsigned id = 0;              // OS index
  std::vector<unsigned> cpus;   // logical CPUs (OS indexes)
  uint64_t memory_bytes = 0;
};

struct Topology {
  std::vector<NumaNode> nodes;  // at least one
  unsigned physical_cores = 1;
  unsigned logical_cpus = 1;
  // "hwloc", "hwloc-synthetic" (HWLOC_SYNTHETIC), "hwloc-xml" (HWLOC_XMLFILE) or "os"
  // (built without hwloc: sysfs, a single node when unknown).
  std::string source;
  bool can_bind = false;  // the topology is this machine's: pinning and membind are real

  // Detected once per process, on first use.
  static const Topology& get();
  // The node with this OS index; throws std::invalid_argument naming the available nodes.
  const NumaNode& node(unsigned id) const;
};

enum class NumaMode { Auto, Uma, Force };

// Parses "auto" | "uma" | "disabled" | "force" (any case); throws std::invalid_argument.
NumaMode parse_numa_mode(const std::string& s);

// Where each worker of a call runs: worker i is bound to cpusets[i % size]. Empty: workers
// are not bound and take blocks dynamically; otherwise each worker fills a fixed share of
// the call's range, so it keeps writing the pages it touched first (node-local).
struct WorkerPlan {
  std::vector<std::vector<unsigned>> cpusets;
  unsigned threads = 1;
  bool operator==(const WorkerPlan&) const = default;
};

// uma: unbound. auto: unbound on one node; one worker per allowed CPU spread over the nodes
// (round-robin) on several. force: as auto with several nodes, even on one. numa_node=N:
// every worker bound to node N's CPUs (throws std::invalid_argument naming the available
// nodes if N does not exist). threads=0 picks the CPUs this process may use (on node N).
WorkerPlan plan_workers(const Topology& topo, NumaMode mode, std::optional<unsigned> node,
                        unsigned threads, const std::vector<unsigned>& allowed_cpus);

// CPUs in this process's affinity mask.
std::vector<unsigned> allowed_cpus();

// Binds the calling thread to cpus; false (and no change) when that is not possible.
bool bind_thread(const std::vector<unsigned>& cpus);

// Page-aligned memory (2 MiB-aligned, huge pages, when large), bound to a NUMA node when
// given and possible. Its contents are unspecified (freed buffers are reused). Release
// with free_memory and the same bytes and node. Throws dgen::OutOfMemory (a std::bad_alloc)
// when the request exceeds what can be had (dgen/memory.hpp) or the kernel refuses it.
void* allocate(uint64_t bytes, std::optional<unsigned> node);
void free_memory(void* p, uint64_t bytes, std::optional<unsigned> node);

}  // namespace dgen
