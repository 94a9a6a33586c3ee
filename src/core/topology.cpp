// Topology from hwloc when built with it (DGEN_HAVE_HWLOC), else from sysfs.
#include "dgen/topology.hpp"

#include "dgen/memory.hpp"

#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <new>
#include <set>
#include <sstream>
#include <stdexcept>

#if defined(DGEN_HAVE_HWLOC)
#include <hwloc.h>
#endif

#include "pool.hpp"

namespace dgen {
namespace {

std::vector<unsigned> parse_cpu_list(const std::string& text) {  // "0-3,8,10-11"
  std::vector<unsigned> cpus;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, ',');) {
    if (part.empty() || !std::isdigit(static_cast<unsigned char>(part[0]))) continue;
    const auto dash = part.find('-');
    const unsigned lo = unsigned(std::stoul(part));
    const unsigned hi = dash == std::string::npos ? lo : unsigned(std::stoul(part.substr(dash + 1)));
    for (unsigned c = lo; c <= hi; ++c) cpus.push_back(c);
  }
  return cpus;
}

Topology from_sysfs() {
  Topology t;
  t.source = "os";
  t.logical_cpus = unsigned(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/devices/system/node", ec)) {
    const std::string name = entry.path().filename();
    if (name.size() < 5 || name.compare(0, 4, "node") != 0 ||
        !std::isdigit(static_cast<unsigned char>(name[4])))
      continue;
    const std::string dir = entry.path();
    std::ifstream cpulist(dir + "/cpulist");
    if (!cpulist) continue;
    NumaNode n;
    n.id = unsigned(std::stoul(name.substr(4)));
    std::string text;
    std::getline(cpulist, text);
    n.cpus = parse_cpu_list(text);
    std::ifstream meminfo(dir + "/meminfo");
    for (std::string line; std::getline(meminfo, line);)
      if (const auto p = line.find("MemTotal:"); p != std::string::npos)
        n.memory_bytes = std::stoull(line.substr(p + 9)) * 1024;
    t.nodes.push_back(std::move(n));
  }
  std::sort(t.nodes.begin(), t.nodes.end(),
            [](const NumaNode& a, const NumaNode& b) { return a.id < b.id; });
  if (t.nodes.empty()) {
    NumaNode n;
    for (unsigned c = 0; c < t.logical_cpus; ++c) n.cpus.push_back(c);
    n.memory_bytes = uint64_t(sysconf(_SC_PHYS_PAGES)) * uint64_t(sysconf(_SC_PAGE_SIZE));
    t.nodes.push_back(std::move(n));
  }
  std::set<std::pair<std::string, std::string>> cores;
  for (unsigned c = 0; c < t.logical_cpus; ++c) {
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
    std::ifstream pkg(dir + "physical_package_id"), core(dir + "core_id");
    std::string a, b;
    if (pkg >> a && core >> b) cores.insert({a, b});
  }
  t.physical_cores = cores.empty() ? t.logical_cpus : unsigned(cores.size());
  t.can_bind = true;
  return t;
}

#if defined(DGEN_HAVE_HWLOC)
hwloc_topology_t hwloc_topo() {  // loaded once; never destroyed (used by allocate())
  static hwloc_topology_t topo = [] {
    hwloc_topology_t t = nullptr;
    if (hwloc_topology_init(&t) != 0) return hwloc_topology_t{};
    if (hwloc_topology_load(t) != 0) {
      hwloc_topology_destroy(t);
      return hwloc_topology_t{};
    }
    return t;
  }();
  return topo;
}

std::vector<unsigned> cpus_of(hwloc_const_cpuset_t set) {
  std::vector<unsigned> cpus;
  for (int i = hwloc_bitmap_first(set); i >= 0; i = hwloc_bitmap_next(set, i))
    cpus.push_back(unsigned(i));
  return cpus;
}

std::optional<Topology> from_hwloc() {
  hwloc_topology_t topo = hwloc_topo();
  if (!topo) return std::nullopt;
  Topology t;
  t.can_bind = hwloc_topology_is_thissystem(topo) != 0;
  t.source = std::getenv("HWLOC_SYNTHETIC") ? "hwloc-synthetic"
             : std::getenv("HWLOC_XMLFILE") ? "hwloc-xml"
                                            : "hwloc";
  if (t.source == "hwloc" && !t.can_bind) t.source = "hwloc-foreign";
  const int nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  for (int i = 0; i < nodes; ++i) {
    hwloc_obj_t obj = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, unsigned(i));
    NumaNode n;
    n.id = obj->os_index;
    n.cpus = cpus_of(obj->cpuset);
    n.memory_bytes = obj->attr ? obj->attr->numanode.local_memory : 0;
    t.nodes.push_back(std::move(n));
  }
  t.physical_cores = unsigned(std::max(1, hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE)));
  t.logical_cpus = unsigned(std::max(1, hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU)));
  if (t.nodes.empty()) return std::nullopt;
  return t;
}
#endif

}  // namespace

const Topology& Topology::get() {
  static const Topology t = [] {
#if defined(DGEN_HAVE_HWLOC)
    if (auto h = from_hwloc()) return *h;
#endif
    return from_sysfs();
  }();
  return t;
}

const NumaNode& Topology::node(unsigned id) const {
  std::string ids;
  for (const NumaNode& n : nodes) {
    if (n.id == id) return n;
    ids += (ids.empty() ? "" : ", ") + std::to_string(n.id);
  }
  throw std::invalid_argument("numa_node must be one of the available nodes [" + ids +
                              "], got " + std::to_string(id));
}

NumaMode parse_numa_mode(const std::string& s) {
  std::string m = s;
  for (char& c : m) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (m == "auto") return NumaMode::Auto;
  if (m == "uma" || m == "disabled") return NumaMode::Uma;
  if (m == "force") return NumaMode::Force;
  throw std::invalid_argument("numa_mode must be one of auto, uma, disabled, force; got '" + s +
                              "'");
}

std::vector<unsigned> allowed_cpus() {
  cpu_set_t set;
  std::vector<unsigned> cpus;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (unsigned c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

WorkerPlan plan_workers(const Topology& topo, NumaMode mode, std::optional<unsigned> node,
                        unsigned threads, const std::vector<unsigned>& allowed) {
  const auto usable = [&](const NumaNode& n) {  // the node's CPUs this process may use
    std::vector<unsigned> cpus;
    if (!topo.can_bind) return n.cpus;  // a pretend topology: its CPUs are not ours anyway
    for (unsigned c : n.cpus)
      if (std::find(allowed.begin(), allowed.end(), c) != allowed.end()) cpus.push_back(c);
    return cpus;
  };
  WorkerPlan plan;
  if (node) {
    const NumaNode& n = topo.node(*node);
    auto cpus = usable(n);
    if (cpus.empty()) cpus = n.cpus;
    plan.threads = threads ? threads
                   : topo.can_bind ? unsigned(cpus.size())
                                   : unsigned(std::min(cpus.size(), allowed.size()));
    plan.cpusets.push_back(std::move(cpus));
    return plan;
  }
  const bool spread = mode == NumaMode::Force || (mode == NumaMode::Auto && topo.nodes.size() > 1);
  if (!spread) {
    plan.threads = threads ? threads : unsigned(allowed.size());
    return plan;
  }
  // Round-robin over nodes: worker i on the (i / nodes)-th usable CPU of node i % nodes.
  std::vector<std::vector<unsigned>> per_node;
  for (const NumaNode& n : topo.nodes)
    if (auto cpus = usable(n); !cpus.empty()) per_node.push_back(std::move(cpus));
  size_t total = 0;
  for (const auto& c : per_node) total += c.size();
  // A pretend topology's CPUs are not ours: default to the threads we really have.
  plan.threads = threads ? threads
                 : topo.can_bind ? unsigned(std::max<size_t>(1, total))
                                 : unsigned(allowed.size());
  for (size_t i = 0; i < total; ++i) {
    const auto& cpus = per_node[i % per_node.size()];
    const size_t k = i / per_node.size();
    if (k < cpus.size()) plan.cpusets.push_back({cpus[k]});
  }
  if (plan.cpusets.empty()) plan.cpusets.push_back(allowed);
  return plan;
}

bool bind_thread(const std::vector<unsigned>& cpus) {
  if (cpus.empty() || !Topology::get().can_bind) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (unsigned c : cpus)
    if (c < CPU_SETSIZE) CPU_SET(c, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

namespace {

// Recently freed buffers, kept for the next allocation of the same size and node: a loop
// of get_chunk() calls then reuses resident pages instead of faulting in new ones. Its lock
// is process-wide and taken without the GIL (every Stream.write allocates), so it belongs
// to the fork protocol (pool.cpp): held across fork(), made anew in the child.
class Recycler {
 public:
  void before_fork() { mu_.lock(); }
  void after_fork(bool child) {
    if (child)
      new (&mu_) std::mutex;  // held by this thread in the parent; a fresh one here
    else
      mu_.unlock();
  }

  void* take(uint64_t len, int node) {
    std::lock_guard lk(mu_);
    for (size_t i = 0; i < kept_.size(); ++i)
      if (kept_[i].len == len && kept_[i].node == node) {
        void* p = kept_[i].p;
        held_ -= len;
        kept_.erase(kept_.begin() + long(i));
        return p;
      }
    return nullptr;
  }
  bool keep(void* p, uint64_t len, int node) {
    std::lock_guard lk(mu_);
    if (len > kMaxHeld / 2) return false;
    while (!kept_.empty() && (held_ + len > kMaxHeld || kept_.size() >= 4)) {
      munmap(kept_.front().p, kept_.front().len);
      held_ -= kept_.front().len;
      kept_.erase(kept_.begin());
    }
    kept_.push_back({p, len, node});
    held_ += len;
    return true;
  }

 private:
  static constexpr uint64_t kMaxHeld = 128ull << 20;
  struct Kept {
    void* p;
    uint64_t len;
    int node;
  };
  std::mutex mu_;
  std::vector<Kept> kept_;
  uint64_t held_ = 0;
};

Recycler& recycler() {
  static Recycler* r = new Recycler;  // never destroyed: may be used during exit
  return *r;
}

constexpr uint64_t kHugePage = 2ull << 20;

uint64_t mapped_length(uint64_t bytes) { return (std::max<uint64_t>(bytes, 1) + 4095) & ~4095ull; }

}  // namespace

void* allocate(uint64_t bytes, std::optional<unsigned> node) {
  const uint64_t len = mapped_length(bytes);
  const int key = node ? int(*node) : -1;
  if (void* p = recycler().take(len, key)) return p;
  check_memory(len);  // before the kernel can promise what it cannot give
  // Large buffers start on a 2 MiB boundary and ask for transparent huge pages: 512 times
  // fewer page faults on first touch, which otherwise cost more than generating the data.
  const uint64_t extra = len >= kHugePage ? kHugePage : 0;
  void* raw = mmap(nullptr, len + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED)
    throw OutOfMemory("asked " + format_bytes(len) + " (" + std::to_string(len) +
                      " bytes); the kernel refused the mapping (" + memory_headroom().readings + ")");
  auto* p = static_cast<uint8_t*>(raw);
  if (extra) {
    auto* aligned = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) + kHugePage - 1) &
                                               ~(kHugePage - 1));
    if (aligned > p) munmap(p, uint64_t(aligned - p));
    if (const uint64_t tail = uint64_t(p + len + extra - (aligned + len))) munmap(aligned + len, tail);
    p = aligned;
    madvise(p, len, MADV_HUGEPAGE);
  }
#if defined(DGEN_HAVE_HWLOC)
  if (node && Topology::get().can_bind && hwloc_topo()) {
    hwloc_topology_t topo = hwloc_topo();
    if (hwloc_obj_t obj = hwloc_get_numanode_obj_by_os_index(topo, *node))
      hwloc_set_area_membind(topo, p, len, obj->nodeset, HWLOC_MEMBIND_BIND,
                             HWLOC_MEMBIND_BYNODESET);  // best effort: first touch still helps
  }
#endif
  return p;
}

void free_memory(void* p, uint64_t bytes, std::optional<unsigned> node) {
  if (!p) return;
  const uint64_t len = mapped_length(bytes);
  if (!recycler().keep(p, len, node ? int(*node) : -1)) munmap(p, len);
}

namespace pool {
void recycler_before_fork() { recycler().before_fork(); }
void recycler_after_fork(bool child) { recycler().after_fork(child); }
}  // namespace pool

}  // namespace dgen
