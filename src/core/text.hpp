// Numbers in error messages: %g, so that 1e-10 reads as 1e-10 (std::to_string prints
// 0.000000) and 2.5 as 2.5.
#pragma once

#include <cstdio>
#include <string>

namespace dgen {

inline std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

}  // namespace dgen
