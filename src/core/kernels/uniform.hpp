// Random words to uniform float32, shared by every kernel. Internal linkage on purpose, as
// page_seed.hpp: each ISA file compiles its own copy with its own flags. Every file that
// includes it is built with -ffp-contract=off (CMakeLists.txt): a fused multiply-add would
// round once where the reference rounds twice, and change the values between machines.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels.hpp"

namespace dgen::kernels {
namespace {

static_assert(std::endian::native == std::endian::little, "random words are little-endian");

// Word w (bytes [4i, 4i + 4) of `random`) becomes low + float(w >> 8) * step in float32,
// each operation rounded to nearest. That never falls below low but may round up to high:
// such a value becomes the float just below high.
inline float uniform_value(uint32_t w, const UniformScale& s) {
  const float v = s.low + float(w >> 8) * s.step;
  return v < s.high ? v : s.below_high;
}

inline void uniform_portable(float* dst, const uint8_t* random, size_t n, const UniformScale& s) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t w;
    std::memcpy(&w, random + 4 * i, 4);
    dst[i] = uniform_value(w, s);
  }
}

}  // namespace
}  // namespace dgen::kernels
