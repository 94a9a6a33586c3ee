// Data model internals: keys and the unit-to-unique-id permutation (docs/data-model.md).
#pragma once

#include <cstddef>
#include <cstdint>

namespace dgen::model {

// SplitMix64's finalizer: a bijection of 64-bit words with full avalanche.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

inline uint64_t page_key(uint64_t unit_key, uint64_t page_in_unit) {
  return mix64(unit_key ^ (0xD1B54A32D192ED03ull * (page_in_unit + 1)));
}

// The x that permute() sends to y.
uint64_t unpermute(uint64_t y, uint64_t n, uint64_t key);

// A keyed shuffle of [0, n), n <= 8 (Fisher-Yates): order[x] is where x goes. Small domains
// need a real shuffle, which a Feistel network of 2-bit halves is not.
void shuffle(uint64_t key, uint8_t* order, unsigned n);
inline void shuffle8(uint64_t key, uint8_t (&order)[8]) { shuffle(key, order, 8); }

// Keyed bijection of [0, n): a 4-round balanced Feistel network with cycle walking.
uint64_t permute(uint64_t x, uint64_t n, uint64_t key);

// permute() (Forward) or unpermute() of values[i] with keys[i], i < count, all with the
// same n, in place: the values' chains of hashes are independent, so the CPU overlaps them.
template <bool Forward>
void permute_many(uint64_t n, const uint64_t* keys, uint64_t* values, size_t count);

// permute() and unpermute() for one key over a domain of at most 256 values, its round
// function tabulated once (4 rounds x 2^half values): many values of one window's
// permutation then cost table lookups instead of four hashes each.
class SmallPermutation {
 public:
  SmallPermutation(uint64_t n, uint64_t key);
  // values[i] = permute(values[i]) (Forward) or unpermute(values[i]), i < count <= 256,
  // side by side (the lookups of one value depend on each other, not on other values').
  template <bool Forward>
  void apply(uint8_t* values, size_t count) const;

 private:
  uint64_t n_;
  int half_ = 0;
  uint8_t mask_ = 0;
  uint8_t f_[4][16] = {};
};

// Rounds a non-negative value to the nearest integer, ties to even (as Python's round()).
uint64_t round_half_even(double x);

// Random bytes per 4 KiB page for a compression ratio (the calibration).
uint32_t random_len_for(double compress_ratio);

}  // namespace dgen::model
