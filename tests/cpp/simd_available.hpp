// Whether this build and this CPU have the AVX2 path, for tests that compare it with scalar.
#pragma once

#include "kernels/kernels.hpp"

inline bool simd_available() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return dgen::kernels::avx2() && __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}
