// The SIMD paths this build, CPU and OS can run, for tests that compare them with scalar.
#pragma once

#include <vector>

#include "kernels/kernels.hpp"

inline std::vector<const dgen::kernels::Table*> simd_tables() {
  std::vector<const dgen::kernels::Table*> out;
  for (const char* isa : {"avx2", "avx512"})
    if (const dgen::kernels::Table* t = dgen::kernels::usable(isa)) out.push_back(t);
  return out;
}
