// Memory headroom from /proc and the cgroup tree: see dgen/memory.hpp.
#include "dgen/memory.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

namespace dgen {
namespace {

namespace fs = std::filesystem;

// A cgroup "limit" this large means none (v1 writes 2^63 rounded down to a page).
constexpr uint64_t kNoLimit = 1ull << 62;

std::optional<uint64_t> read_number(const fs::path& file) {
  std::ifstream in(file);
  std::string word;
  if (!(in >> word) || word == "max") return std::nullopt;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(word.c_str(), &end, 10);
  if (end == word.c_str()) return std::nullopt;
  return uint64_t(v);
}

// The value of `key` in a "key value [kB]" file such as /proc/meminfo or memory.stat.
std::optional<uint64_t> read_field(const fs::path& file, const std::string& key, uint64_t scale) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    std::istringstream ss(line);
    std::string k;
    unsigned long long v;
    if (ss >> k >> v && (k == key || k == key + ":")) return uint64_t(v) * scale;
  }
  return std::nullopt;
}

struct Reading {
  uint64_t headroom;
  std::string text;
};

// Each cgroup from the process's own up to the root of its hierarchy: a limit set on any
// of them applies.
void read_cgroups(const MemorySources& src, std::vector<Reading>& out) {
  std::ifstream in(src.self_cgroup);
  for (std::string line; std::getline(in, line);) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    const bool v2 = controllers.empty();
    bool memory = v2;
    std::istringstream cs(controllers);
    for (std::string c; std::getline(cs, c, ',');) memory |= c == "memory";
    if (!memory) continue;
    const fs::path base = v2 ? fs::path(src.cgroup_root) : fs::path(src.cgroup_root) / "memory";
    // Inside a cgroup namespace the mount shows only our own subtree: start at its top.
    const fs::path own = fs::path(path).relative_path();
    fs::path dir = own.empty() ? base : base / own;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) dir = base;
    for (;;) {
      const auto limit = read_number(dir / (v2 ? "memory.max" : "memory.limit_in_bytes"));
      if (limit && *limit < kNoLimit) {
        const uint64_t usage =
            read_number(dir / (v2 ? "memory.current" : "memory.usage_in_bytes")).value_or(0);
        // Inactive page cache is given back under pressure before anything is killed.
        const uint64_t cache =
            read_field(dir / "memory.stat", v2 ? "inactive_file" : "total_inactive_file", 1)
                .value_or(0);
        const uint64_t used = usage - std::min(usage, cache);
        out.push_back({*limit - std::min(*limit, used),
                       "cgroup limit " + format_bytes(*limit) + ", " + format_bytes(used) + " in use"});
      }
      if (dir == base || !dir.has_parent_path() || dir.parent_path() == dir) break;
      dir = dir.parent_path();
    }
  }
}

void read_rlimit(const MemorySources& src, int resource, const char* name, const char* vm_key,
                 std::vector<Reading>& out) {
  rlimit rl{};
  if (getrlimit(resource, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
  const uint64_t limit = rl.rlim_cur;
  const uint64_t mapped = read_field(src.self_status, vm_key, 1024).value_or(0);
  out.push_back({limit - std::min(limit, mapped), std::string(name) + " " + format_bytes(limit) +
                                                      ", " + format_bytes(mapped) + " mapped"});
}

}  // namespace

std::string format_bytes(uint64_t bytes) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (u < 6 && bytes >= (1ull << (10 * (u + 1)))) ++u;
  if (u == 0) return std::to_string(bytes) + " B";
  const uint64_t whole = bytes >> (10 * u);
  if (bytes == whole << (10 * u)) return std::to_string(whole) + " " + units[u];
  char text[32];
  std::snprintf(text, sizeof text, "%.1f %s", double(bytes) / double(1ull << (10 * u)), units[u]);
  return text;
}

MemoryHeadroom memory_headroom(const MemorySources& src) {
  std::vector<Reading> found;
  if (const auto avail = read_field(src.meminfo, "MemAvailable", 1024))
    found.push_back({*avail, "MemAvailable " + format_bytes(*avail)});
  read_cgroups(src, found);
  if (src.rlimits) {
    read_rlimit(src, RLIMIT_AS, "RLIMIT_AS", "VmSize", found);
    read_rlimit(src, RLIMIT_DATA, "RLIMIT_DATA", "VmData", found);
  }
  MemoryHeadroom h;
  for (const Reading& r : found) {
    if (r.headroom < h.bytes) {
      h.bytes = r.headroom;
      h.limited_by = r.text;
    }
    h.readings += (h.readings.empty() ? "" : "; ") + r.text;
  }
  return h;
}

void check_memory(uint64_t bytes, const MemorySources& src) {
  if (bytes < kMemoryCheckFrom) return;
  if (const char* skip = std::getenv("DGEN_SKIP_MEMORY_CHECK"); skip && std::string(skip) == "1")
    return;
  const MemoryHeadroom h = memory_headroom(src);
  if (bytes <= h.bytes) return;
  throw OutOfMemory("asked " + format_bytes(bytes) + " (" + std::to_string(bytes) + " bytes); " +
                    format_bytes(h.bytes) + " available (" + h.limited_by +
                    "); DGEN_SKIP_MEMORY_CHECK=1 skips this check");
}

}  // namespace dgen
