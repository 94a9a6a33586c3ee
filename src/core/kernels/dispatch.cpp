// Chooses the kernel table once per process from CPU features and DGEN_ISA.
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "kernels.hpp"

namespace dgen::kernels {

#if !defined(DGEN_HAVE_AVX2)
const Table* avx2() { return nullptr; }
#endif

namespace {

const Table* supported_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) return avx2();
#endif
  return nullptr;
}

// An unset or empty DGEN_ISA picks the best path; a value naming no usable path is refused
// (a typo would otherwise measure another path than the one asked for).
const Table& choose() {
  const char* want = std::getenv("DGEN_ISA");
  const std::string_view w = want ? want : "";
  const Table* best = supported_avx2();
  if (w.empty()) return best ? *best : scalar();
  if (w == "scalar") return scalar();
  if (w == "avx2" && best) return *best;
  throw std::invalid_argument("DGEN_ISA must be unset or one of scalar, avx2" +
                              std::string(best ? "" : " (avx2: not on this CPU or build)") +
                              "; got '" + std::string(w) + "'");
}

}  // namespace

const Table& active() {
  static const Table& t = choose();  // a throw leaves it unset: every call throws again
  return t;
}

}  // namespace dgen::kernels
