// The SIMD kernel table. One file per ISA implements it (scalar.cpp is the reference);
// dispatch.cpp picks one at startup. Every implementation writes identical bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dgen::kernels {

// Values per uniform block: 4 KiB of random words, one float32 from each 32-bit word.
inline constexpr size_t kUniformBlock = 1024;

// The map of uniform() from random words to [low, high) (uniform.hpp).
struct UniformScale {
  float low;
  float step;        // (high - low) / 2^24, the distance between neighbouring values
  float high;
  float below_high;  // the largest float32 below high
};

struct Table {
  const char* name;
  // Writes `count` consecutive 4 KiB pages to dst: page i from keys[i] (docs/data-model.md),
  // `random_len` (0..4096) bytes from its Xoshiro256++ lanes, then the filler. With
  // `stream`, non-temporal stores where dst allows.
  void (*pages)(uint8_t* dst, const uint64_t* keys, size_t count, uint32_t random_len,
                bool stream);
  // Orders preceding non-temporal stores (sfence) — call once after a run of pages.
  void (*fence)();
  // Writes `count` blocks of kUniformBlock float32 values in [low, high) to dst: block i
  // from the words of the page pages() makes from keys[i] with random_len 4096, each
  // little-endian 32-bit word one value (uniform.hpp). With `stream`, non-temporal stores
  // where dst allows; then fence().
  void (*uniform)(float* dst, const uint64_t* keys, size_t count, const UniformScale& s,
                  bool stream);
};

const Table& scalar();
const Table* avx2();    // nullptr when not compiled in
// Chosen once: DGEN_ISA override, else the best the CPU supports. Throws
// std::invalid_argument for a DGEN_ISA naming no path usable here.
const Table& active();

}  // namespace dgen::kernels
