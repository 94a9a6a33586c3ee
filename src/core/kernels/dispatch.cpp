// Chooses the kernel table once per process from CPU features and DGEN_ISA.
#include <cstdlib>
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

const Table& choose() {
  const char* want = std::getenv("DGEN_ISA");
  const std::string_view w = want ? want : "";
  if (w == "scalar") return scalar();
  if (const Table* t = supported_avx2()) return *t;
  return scalar();
}

}  // namespace

const Table& active() {
  static const Table& t = choose();
  return t;
}

}  // namespace dgen::kernels
