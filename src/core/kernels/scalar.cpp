// Reference implementation: plain C++, the oracle the SIMD paths are tested against.
#include <cstring>

#include "kernels.hpp"
#include "page_seed.hpp"
#include "typed.hpp"
#include "uniform.hpp"

namespace dgen::kernels {
namespace {

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

inline void store_le(uint8_t* p, uint64_t v) {
  for (int b = 0; b < 8; ++b) p[b] = uint8_t(v >> (8 * b));
}

// One Xoshiro256++ step of all lanes: 64 bytes, lane l at bytes [8l, 8l + 8).
inline void step(uint64_t (&s)[4][kLanes], uint8_t* out) {
  for (int l = 0; l < kLanes; ++l) {
    store_le(out + 8 * l, rotl(s[0][l] + s[3][l], 23) + s[0][l]);
    const uint64_t t = s[1][l] << 17;
    s[2][l] ^= s[0][l];
    s[3][l] ^= s[1][l];
    s[1][l] ^= s[2][l];
    s[0][l] ^= s[3][l];
    s[2][l] ^= t;
    s[3][l] = rotl(s[3][l], 45);
  }
}

void page(uint8_t* dst, uint64_t key, uint32_t r) {
  uint64_t words[kSeedWords];
  seed_page(key, words);
  uint64_t s[4][kLanes];
  for (int w = 0; w < 4; ++w)
    for (int l = 0; l < kLanes; ++l) s[w][l] = words[kLanes * w + l];

  uint32_t j = 0;
  for (; j + 64 <= r; j += 64) step(s, dst + j);
  if (j < r) {
    uint8_t tail[64];
    step(s, tail);
    std::memcpy(dst + j, tail, r - j);
    j = r;
  }
  uint8_t pattern[8];
  store_le(pattern, words[4 * kLanes]);
  for (; j < 4096 && j % 8 != 0; ++j) dst[j] = pattern[j % 8];
  for (; j < 4096; j += 8) std::memcpy(dst + j, pattern, 8);
}

void pages(uint8_t* dst, const uint64_t* keys, size_t count, uint32_t random_len, Stores) {
  for (size_t i = 0; i < count; ++i) page(dst + 4096 * i, keys[i], random_len);
}

void fence() {}

void uniform(float* dst, const uint64_t* keys, size_t count, const UniformScale& s, Stores) {
  alignas(64) uint8_t random[4 * kUniformBlock];
  for (size_t i = 0; i < count; ++i) {
    page(random, keys[i], sizeof random);
    uniform_portable(dst + kUniformBlock * i, random, kUniformBlock, s);
  }
}

void typed(uint8_t* dst, const uint64_t* keys, size_t count, const TypedSpec& t, Stores) {
  alignas(64) uint8_t random[4096];
  const size_t block_bytes = block_elements(t) * element_size(t.dtype);
  for (size_t i = 0; i < count; ++i) {
    page(random, keys[i], sizeof random);
    typed_portable(dst + block_bytes * i, random, t);
  }
}

void ring_copy(uint8_t* dst, const uint8_t* ring, size_t ring_size, size_t start, size_t n) {
  while (n > 0) {
    const size_t m = n < ring_size - start ? n : ring_size - start;
    std::memcpy(dst, ring + start, m);
    dst += m;
    n -= m;
    start = 0;
  }
}

void shifted(uint8_t* dst, const uint64_t* keys, size_t count, size_t skip, size_t n,
             uint32_t random_len) {
  alignas(64) uint8_t buf[4096];
  for (size_t i = skip / 4096; n > 0 && i < count; ++i, skip = 0) {
    page(buf, keys[i], random_len);
    const size_t at = skip % 4096, m = n < 4096 - at ? n : 4096 - at;
    std::memcpy(dst, buf + at, m);
    dst += m;
    n -= m;
  }
}

bool equal(const uint8_t* data, const uint64_t* keys, size_t count, uint32_t random_len, bool) {
  alignas(64) uint8_t buf[4096];
  for (size_t i = 0; i < count; ++i) {
    page(buf, keys[i], random_len);
    if (std::memcmp(buf, data + 4096 * i, 4096) != 0) return false;
  }
  return true;
}

}  // namespace

const Table& scalar() {
  static const Table t{"scalar", pages, fence, uniform, typed, ring_copy, shifted, equal};
  return t;
}

}  // namespace dgen::kernels
