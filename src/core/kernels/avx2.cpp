// AVX2 path: two 4-lane Xoshiro256++ vectors per step (64 bytes), compiled with -mavx2.
#include <immintrin.h>

#include "kernels.hpp"
#include "page_seed.hpp"

namespace dgen::kernels {
namespace {

enum class Store { Unaligned, Stream16, Stream32 };

// Writes a page's 32-byte pieces in order.
template <Store S>
struct Writer {
  uint8_t* p;
  inline void put(__m256i v) {
    if constexpr (S == Store::Stream32)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p), v);
    else
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
    p += 32;
  }
  inline void finish() {}
};

// For destinations 16 bytes off a 32-byte boundary (malloc'd buffers such as bytearray):
// shifting the stream by half a vector makes every 32-byte store aligned, which streams
// as fast as an aligned page; only the first and last 16 bytes go out on their own.
template <>
struct Writer<Store::Stream16> {
  uint8_t* p;
  __m256i prev = _mm256_setzero_si256();
  bool started = false;
  inline void put(__m256i v) {
    if (started) {
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p), _mm256_permute2x128_si256(prev, v, 0x21));
      p += 32;
    } else {
      _mm_stream_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(v));
      p += 16;
      started = true;
    }
    prev = v;
  }
  inline void finish() {
    _mm_stream_si128(reinterpret_cast<__m128i*>(p), _mm256_extracti128_si256(prev, 1));
  }
};

template <int K>
inline __m256i rotl(__m256i x) {
  return _mm256_or_si256(_mm256_slli_epi64(x, K), _mm256_srli_epi64(x, 64 - K));
}

struct Lanes {
  __m256i s0, s1, s2, s3;
  inline __m256i next() {
    const __m256i out = _mm256_add_epi64(rotl<23>(_mm256_add_epi64(s0, s3)), s0);
    const __m256i t = _mm256_slli_epi64(s1, 17);
    s2 = _mm256_xor_si256(s2, s0);
    s3 = _mm256_xor_si256(s3, s1);
    s1 = _mm256_xor_si256(s1, s2);
    s0 = _mm256_xor_si256(s0, s3);
    s2 = _mm256_xor_si256(s2, t);
    s3 = rotl<45>(s3);
    return out;
  }
};

inline __m256i load(const uint64_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

template <Store S>
void page_with(uint8_t* dst, const uint64_t (&w)[kSeedWords], uint32_t r) {
  Lanes a{load(w + 0), load(w + 8), load(w + 16), load(w + 24)};   // lanes 0-3
  Lanes b{load(w + 4), load(w + 12), load(w + 20), load(w + 28)};  // lanes 4-7
  const __m256i pattern = _mm256_set1_epi64x(static_cast<long long>(w[4 * kLanes]));

  Writer<S> out{dst};
  uint32_t j = 0;
  for (; j + 64 <= r; j += 64) {
    out.put(a.next());
    out.put(b.next());
  }
  if (j < r) {  // the step holding the end of the random part: blend in the filler
    const __m256i rem = _mm256_set1_epi8(static_cast<char>(r - j));
    const __m256i lo = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
                                        29, 30, 31);
    const __m256i hi = _mm256_add_epi8(lo, _mm256_set1_epi8(32));
    out.put(_mm256_blendv_epi8(pattern, a.next(), _mm256_cmpgt_epi8(rem, lo)));
    out.put(_mm256_blendv_epi8(pattern, b.next(), _mm256_cmpgt_epi8(rem, hi)));
    j += 64;
  }
  for (; j < 4096; j += 32) out.put(pattern);
  out.finish();
}

template <Store S>
void pages_with(uint8_t* dst, const uint64_t* keys, size_t count, uint32_t r) {
  for (size_t i = 0; i < count; ++i) {
    uint64_t words[kSeedWords];
    seed_page(keys[i], words);
    page_with<S>(dst + 4096 * i, words, r);
  }
}

void pages(uint8_t* dst, const uint64_t* keys, size_t count, uint32_t random_len, bool stream) {
  if (count == 0) return;
  const auto addr = reinterpret_cast<uintptr_t>(dst);
  if (stream && addr % 32 == 0)
    pages_with<Store::Stream32>(dst, keys, count, random_len);
  else if (stream && addr % 16 == 0)
    pages_with<Store::Stream16>(dst, keys, count, random_len);
  else
    pages_with<Store::Unaligned>(dst, keys, count, random_len);
}

void fence() { _mm_sfence(); }

}  // namespace

const Table* avx2() {
  static const Table t{"avx2", pages, fence};
  return &t;
}

}  // namespace dgen::kernels
