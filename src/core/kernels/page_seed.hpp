// Lane seeding shared by every kernel. Internal linkage on purpose: each ISA file gets its
// own copy compiled with its own flags, so no -mavx2 code can leak into the scalar path.
#pragma once

#include <cstdint>

namespace dgen::kernels {
namespace {

constexpr int kLanes = 8;          // independent Xoshiro256++ streams per page
constexpr int kSeedWords = 4 * kLanes + 1;  // 32 state words + the filler pattern

inline uint64_t splitmix_next(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Word i of a page's seed, from x = the SplitMix64 state after word i - 1 (the key at 0).
inline uint64_t seed_word(uint64_t& x, int i) {
  const uint64_t z = splitmix_next(x);
  return i < 4 * kLanes ? z : (z % 255 + 1) * 0x0101010101010101ull;
}

// words[8 * w + l] is state word w of lane l; words[32] is the filler: one non-zero byte
// repeated. A run of one byte is what every compressor finds at once: with a longer period
// the skipping match finders of lz4 and zstd -1 alias with it and miss the run's first
// tens of bytes, which would make the ratio depend on the compressor.
inline void seed_page(uint64_t key, uint64_t (&words)[kSeedWords]) {
  uint64_t x = key;
  for (int i = 0; i < kSeedWords; ++i) words[i] = seed_word(x, i);
}

}  // namespace
}  // namespace dgen::kernels
