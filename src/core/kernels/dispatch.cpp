// Chooses the kernel table from CPU features and DGEN_ISA at first use, or from set_isa().
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "kernels.hpp"

#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace dgen::kernels {

#if !defined(DGEN_HAVE_AVX2)
const Table* avx2() { return nullptr; }
#endif
#if !defined(DGEN_HAVE_AVX512)
const Table* avx512() { return nullptr; }
#endif

namespace {

const Table* supported_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) return avx2();
#endif
  return nullptr;
}

// The CPU has AVX-512 F/BW/VL/DQ and the OS saves the opmask and all 32 zmm registers on a
// context switch (XCR0 bits 1, 2, 5, 6 and 7); without that a zmm instruction faults.
const Table* supported_avx512() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
    return nullptr;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return nullptr;
  uint32_t lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 0xE6) != 0xE6) return nullptr;
  return avx512();
#else
  return nullptr;
#endif
}

// The refusal of a name that picks no usable path, naming the accepted ones.
[[noreturn]] void refuse(const char* param, std::string_view w, const char* unset) {
  std::string unusable;  // the accepted names this CPU, OS or build cannot run
  if (!supported_avx2()) unusable += ", avx2";
  if (!supported_avx512()) unusable += ", avx512";
  throw std::invalid_argument(
      std::string(param) + " must be " + unset + "one of scalar, avx2, avx512" +
      (unusable.empty() ? "" : " (not usable here: " + unusable.substr(2) + ")") + "; got '" +
      std::string(w) + "'");
}

// An unset or empty DGEN_ISA picks the best path; a value naming no usable path is refused
// (a typo would otherwise measure another path than the one asked for).
const Table& choose() {
  const char* want = std::getenv("DGEN_ISA");
  const std::string_view w = want ? want : "";
  if (w.empty()) {
    const Table* best = supported_avx512() ? supported_avx512() : supported_avx2();
    return best ? *best : scalar();
  }
  if (const Table* t = usable(w)) return *t;
  refuse("DGEN_ISA", w, "unset or ");
}

// nullptr until the first use or select(). Every path makes the same bytes, so a call that
// read the old table before a select() may finish on it.
std::atomic<const Table*> chosen{nullptr};

}  // namespace

uint64_t stream_threshold() {
  static const uint64_t bytes = [] {
    long l3 = -1;
#if defined(_SC_LEVEL3_CACHE_SIZE)
    l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    // At most 32 MiB: a bigger last-level cache is shared by more cores (and the tests size
    // their streaming cases from this).
    return l3 > 0 ? std::min(uint64_t(l3), uint64_t{32} << 20) : uint64_t{8} << 20;
  }();
  return bytes;
}

const Table* usable(std::string_view isa) {
  if (isa == "scalar") return &scalar();
  if (isa == "avx2") return supported_avx2();
  if (isa == "avx512") return supported_avx512();
  return nullptr;
}

const Table& active() {
  if (const Table* t = chosen.load(std::memory_order_acquire)) return *t;
  const Table* mine = &choose();  // a throw leaves it unset: every call throws again
  const Table* first = nullptr;    // a select() since the load wins over the environment
  return chosen.compare_exchange_strong(first, mine, std::memory_order_acq_rel) ? *mine : *first;
}

void select(std::string_view isa, const char* param) {
  const Table* t = usable(isa);
  if (!t) refuse(param, isa, "");
  chosen.store(t, std::memory_order_release);
}

}  // namespace dgen::kernels
