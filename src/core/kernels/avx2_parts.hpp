// AVX2 pieces shared by avx2.cpp and avx512.cpp: the byte blend of a page's last random
// step, the realigning writer of shifted(), the uniform and typed conversions and the ring
// copy. Internal linkage on purpose, as page_seed.hpp: each ISA file compiles its own copy
// with its own flags (and -ffp-contract=off, uniform.hpp).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels.hpp"
#include "typed.hpp"
#include "uniform.hpp"

namespace dgen::kernels {
namespace {

// v's first n bytes (all of them when n >= 32), then the filler.
inline __m256i random_first(__m256i v, __m256i filler, uint32_t n) {
  const __m256i iota = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
                                        29, 30, 31);
  const __m256i len = _mm256_set1_epi8(static_cast<char>(n < 32 ? n : 32));
  return _mm256_blendv_epi8(filler, v, _mm256_cmpgt_epi8(len, iota));
}

// shifted(): bytes [skip, skip + n) of a run of pages, non-temporal on dst's 32-byte grid.
// Aligned chunk j of dst is the last 32 - b bytes of one piece and the first b of the next
// (b fixed by skip and dst), so each chunk is two byte shuffles of the pieces as they come.
// Upper: b >= 16 (the chunk's first half comes from the first piece's second half).
template <bool Upper>
class Realigned {
 public:
  // dst 16-byte aligned; t = skip - (dst mod 32): the stream byte at dst's first grid line.
  Realigned(uint8_t* dst, int64_t t, size_t n)
      : line_(dst - reinterpret_cast<uintptr_t>(dst) % 32),
        head_(reinterpret_cast<uintptr_t>(dst) % 32),
        chunks_((head_ + n + 31) / 32),
        tail_(head_ + n - 32 * (chunks_ - 1)) {
    const int64_t first = t >= 0 ? t / 32 : -1;  // the piece of chunk 0's first byte
    first_piece_ = first;
    const auto b = static_cast<int>(t - 32 * first);
    const int sh = Upper ? b - 16 : b;
    const __m256i idx = _mm256_add_epi8(
        _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4,
                         5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm256_set1_epi8(static_cast<char>(sh)));
    const __m256i sixteen = _mm256_set1_epi8(16), zero = _mm256_set1_epi8(char(0x80));
    const __m256i low = _mm256_cmpgt_epi8(sixteen, idx);  // index inside the first register
    lo_ = _mm256_blendv_epi8(zero, idx, low);
    hi_ = _mm256_blendv_epi8(_mm256_sub_epi8(idx, sixteen), zero, low);
    prev_ = _mm256_setzero_si256();
  }
  // Piece number `g` of the stream, in order.
  void put(int64_t g, __m256i v) {
    const int64_t j = g - 1 - first_piece_;  // the chunk whose second piece this is
    if (j > 0 && uint64_t(j) + 1 < chunks_)  // neither the first nor the last
      _mm256_stream_si256(reinterpret_cast<__m256i*>(line_ + 32 * j), combine(prev_, v));
    else if (j >= 0 && uint64_t(j) < chunks_)
      write(uint64_t(j), combine(prev_, v));
    prev_ = v;
  }
  // Pieces g .. g + count - 1, all the filler: one byte repeated, so that once the piece
  // before is the filler too, each chunk is the filler itself.
  void put_filler(int64_t g, int64_t count, __m256i filler) {
    if (count == 0) return;
    put(g, filler);
    int64_t j = std::max<int64_t>(g - first_piece_, 0);  // the chunks of the rest
    const int64_t stop = std::min<int64_t>(g + count - 1 - first_piece_, int64_t(chunks_));
    for (; j < stop && j == 0; ++j) write(0, filler);
    const int64_t inner = std::min<int64_t>(stop, int64_t(chunks_) - 1);
    for (; j < inner; ++j) _mm256_stream_si256(reinterpret_cast<__m256i*>(line_ + 32 * j), filler);
    for (; j < stop; ++j) write(uint64_t(j), filler);
  }
  // After the last piece g - 1: the chunk that would need piece g, if any.
  void finish(int64_t g) {
    const int64_t j = g - 1 - first_piece_;
    if (j >= 0 && uint64_t(j) < chunks_) write(uint64_t(j), combine(prev_, _mm256_setzero_si256()));
  }

 private:
  __m256i combine(__m256i a, __m256i b) const {
    const __m256i t = _mm256_permute2x128_si256(a, b, 0x21);  // a's high half, b's low half
    const __m256i x = Upper ? t : a, y = Upper ? b : t;
    return _mm256_or_si256(_mm256_shuffle_epi8(x, lo_), _mm256_shuffle_epi8(y, hi_));
  }
  void write(uint64_t j, __m256i v) {
    uint8_t* p = line_ + 32 * j;
    const size_t from = j == 0 ? head_ : 0, to = j + 1 == chunks_ ? tail_ : 32;
    if (from == 0 && to == 32) {
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p), v);
    } else if (from == 16 && to == 32) {
      _mm_stream_si128(reinterpret_cast<__m128i*>(p + 16), _mm256_extracti128_si256(v, 1));
    } else if (from == 0 && to == 16) {
      _mm_stream_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(v));
    } else {
      alignas(32) uint8_t bytes[32];
      _mm256_store_si256(reinterpret_cast<__m256i*>(bytes), v);
      std::memcpy(p + from, bytes + from, to - from);
    }
  }
  uint8_t* line_;
  size_t head_, chunks_, tail_;
  int64_t first_piece_ = 0;
  __m256i lo_, hi_, prev_;
};

// Eight values from the 32 bytes of one step, as uniform_value() makes them. Without
// Clamp where no value reaches high: rounding is monotonic, so that holds when the largest
// word's value (top_below_high()) is below it.
template <bool Clamp = true>
inline __m256 to_uniform(__m256i w, __m256 low, __m256 step, __m256 high, __m256 below) {
  const __m256 k = _mm256_cvtepi32_ps(_mm256_srli_epi32(w, 8));
  const __m256 v = _mm256_add_ps(low, _mm256_mul_ps(k, step));
  if constexpr (!Clamp) return v;
  return _mm256_blendv_ps(below, v, _mm256_cmp_ps(v, high, _CMP_LT_OQ));
}

inline bool top_below_high(const UniformScale& s) {
  return s.low + float(0xFFFFFF) * s.step < s.high;
}

// Typed conversions, lane for lane the operations of typed.hpp.

inline __m256d as_double(__m256i v) { return _mm256_castsi256_pd(v); }
inline __m256i as_int(__m256d v) { return _mm256_castpd_si256(v); }

// Exact double of 64-bit lanes below 2^52.
inline __m256d small_to_double(__m256i k) {
  const __m256i magic = _mm256_set1_epi64x(0x4330000000000000ll);
  return _mm256_sub_pd(as_double(_mm256_or_si256(k, magic)), as_double(magic));
}

// half_bits() of eight floats, in the low 16 bits of each 32-bit lane.
inline __m256i half_from(__m256 f) {
  const __m256i b = _mm256_castps_si256(f);
  const __m256i a = _mm256_and_si256(b, _mm256_set1_epi32(0x7FFFFFFF));
  const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(0x8000));
  const __m256i sub = _mm256_sub_epi32(
      _mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(a), _mm256_set1_ps(0.5f))),
      _mm256_set1_epi32(0x3F000000));
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(a, 13), _mm256_set1_epi32(1));
  const __m256i norm = _mm256_srli_epi32(
      _mm256_add_epi32(_mm256_add_epi32(a, _mm256_set1_epi32(int(0xC8000FFFu))), odd), 13);
  // Signed compares are right: a < 2^31.
  const __m256i big = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x477FEFFF));
  const __m256i small = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x38800000), a);
  __m256i h = _mm256_blendv_epi8(norm, sub, small);
  h = _mm256_blendv_epi8(h, _mm256_set1_epi32(0x7C00), big);
  return _mm256_or_si256(h, sign);
}

// bfloat_bits() of eight floats, in the low 16 bits of each 32-bit lane.
inline __m256i bfloat_from(__m256 f) {
  const __m256i b = _mm256_castps_si256(f);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
  return _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7FFF)), odd),
                           16);
}

// Sixteen 32-bit lanes (each below 2^16) as sixteen little-endian 16-bit values.
inline void store16(uint8_t* p, __m256i a, __m256i b) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                      _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8));
}

// Eight floats from 32-bit floats of their dtype: float32 as they are, the others rounded.
inline void store_floats(uint8_t* p, Dtype d, __m256 lo, __m256 hi) {
  if (d == Dtype::f32) {
    _mm256_storeu_ps(reinterpret_cast<float*>(p), lo);
    _mm256_storeu_ps(reinterpret_cast<float*>(p) + 8, hi);
  } else if (d == Dtype::f16) {
    store16(p, half_from(lo), half_from(hi));
  } else {
    store16(p, bfloat_from(lo), bfloat_from(hi));
  }
}

// log_d() of four doubles in (0, 1].
inline __m256d log4(__m256d x) {
  __m256i b = as_int(x);
  __m256i e = _mm256_sub_epi64(_mm256_srli_epi64(b, 52), _mm256_set1_epi64x(1023));
  b = _mm256_or_si256(_mm256_and_si256(b, _mm256_set1_epi64x(0x000FFFFFFFFFFFFFll)),
                      _mm256_set1_epi64x(0x3FF0000000000000ll));
  const __m256i halve = _mm256_cmpgt_epi64(b, _mm256_set1_epi64x(0x3FF6A09E667F3BCDll));
  b = _mm256_sub_epi64(b, _mm256_and_si256(halve, _mm256_set1_epi64x(0x0010000000000000ll)));
  e = _mm256_sub_epi64(e, halve);  // halve is -1 where set
  const __m256d one = _mm256_set1_pd(1.0), m = as_double(b);
  const __m256d f = _mm256_div_pd(_mm256_sub_pd(m, one), _mm256_add_pd(m, one));
  const __m256d s = _mm256_mul_pd(f, f);
  __m256d p = _mm256_set1_pd(1.0 / 23);
  for (int k = 10; k >= 0; --k)
    p = _mm256_add_pd(_mm256_mul_pd(p, s), _mm256_set1_pd(1.0 / (2 * k + 1)));
  // e in [-1100, 1]: exact as a double through the 2^52 + 2^51 magic number.
  const __m256i magic = _mm256_set1_epi64x(0x4338000000000000ll);
  const __m256d ed = _mm256_sub_pd(as_double(_mm256_add_epi64(e, magic)), as_double(magic));
  return _mm256_add_pd(_mm256_mul_pd(ed, _mm256_set1_pd(kLn2)),
                       _mm256_mul_pd(_mm256_mul_pd(_mm256_set1_pd(2.0), f), p));
}

// cos_turn() of the 32-bit values in four 64-bit lanes.
inline __m256d cos4(__m256i w) {
  const __m256d t = _mm256_mul_pd(
      _mm256_add_pd(small_to_double(_mm256_and_si256(w, _mm256_set1_epi64x(0x3FFFFFFF))),
                    _mm256_set1_pd(0.5)),
      _mm256_set1_pd(kHalfPi * 0x1p-30));
  const __m256d t2 = _mm256_mul_pd(t, t), one = _mm256_set1_pd(1.0);
  __m256d c = one, s = one;
  for (int n = 22; n >= 2; n -= 2) {
    c = _mm256_sub_pd(one, _mm256_mul_pd(_mm256_mul_pd(c, t2),
                                         _mm256_set1_pd(1.0 / (double(n) * (n - 1)))));
    s = _mm256_sub_pd(one, _mm256_mul_pd(_mm256_mul_pd(s, t2),
                                         _mm256_set1_pd(1.0 / (double(n + 1) * n))));
  }
  s = _mm256_mul_pd(s, t);
  const __m256i q = _mm256_srli_epi64(w, 30), lsb = _mm256_set1_epi64x(1);
  const __m256d v = _mm256_blendv_pd(
      c, s, as_double(_mm256_cmpeq_epi64(_mm256_and_si256(q, lsb), lsb)));
  const __m256i neg =
      _mm256_slli_epi64(_mm256_and_si256(_mm256_srli_epi64(_mm256_add_epi64(q, lsb), 1), lsb), 63);
  return _mm256_xor_pd(v, as_double(neg));
}

// mean + std * normal_value(x) of four 64-bit words.
inline __m256d normal4(__m256i x, __m256d mean, __m256d std) {
  const __m256d u = _mm256_mul_pd(
      _mm256_add_pd(small_to_double(_mm256_and_si256(x, _mm256_set1_epi64x(0xFFFFFFFFll))),
                    _mm256_set1_pd(0.5)),
      _mm256_set1_pd(0x1p-32));
  const __m256d r = _mm256_sqrt_pd(_mm256_mul_pd(_mm256_set1_pd(-2.0), log4(u)));
  return _mm256_add_pd(mean, _mm256_mul_pd(std, _mm256_mul_pd(r, cos4(_mm256_srli_epi64(x, 32)))));
}

// The high 32 bits of w * n for eight 32-bit words, n < 2^32.
inline __m256i mulhi32(__m256i w, __m256i n) {
  const __m256i even = _mm256_srli_epi64(_mm256_mul_epu32(w, n), 32);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(w, 32), n);
  return _mm256_blend_epi32(even, odd, 0xAA);
}

inline __m256i load_words(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// One block from its random words; false where typed_portable() is to do it (zipf, and
// integers of 8 bytes).
inline bool typed_block(uint8_t* dst, const uint8_t* random, const TypedSpec& t) {
  const size_t n = block_elements(t);
  if (t.dist == Dist::uniform && t.dtype == Dtype::f64) {
    const __m256d low = _mm256_set1_pd(t.low), step = _mm256_set1_pd(t.step);
    const __m256d high = _mm256_set1_pd(t.high), below = _mm256_set1_pd(t.below_high);
    for (size_t i = 0; i < n; i += 4) {
      const __m256d k = small_to_double(_mm256_srli_epi64(load_words(random + 8 * i), 12));
      const __m256d v = _mm256_add_pd(low, _mm256_mul_pd(k, step));
      _mm256_storeu_pd(reinterpret_cast<double*>(dst) + i,
                       _mm256_blendv_pd(below, v, _mm256_cmp_pd(v, high, _CMP_LT_OQ)));
    }
    return true;
  }
  if (t.dist == Dist::uniform) {
    const __m256 low = _mm256_set1_ps(t.f.low), step = _mm256_set1_ps(t.f.step);
    const __m256 high = _mm256_set1_ps(t.f.high), below = _mm256_set1_ps(t.f.below_high);
    const __m256 lo = _mm256_set1_ps(t.clamp_lo), hi = _mm256_set1_ps(t.clamp_hi);
    auto eight = [&](size_t i) {
      const __m256 v = to_uniform(load_words(random + 4 * i), low, step, high, below);
      return _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    };
    for (size_t i = 0; i < n; i += 16)
      store_floats(dst + element_size(t.dtype) * i, t.dtype, eight(i), eight(i + 8));
    return true;
  }
  if (t.dist == Dist::normal) {
    const __m256d mean = _mm256_set1_pd(t.mean), std = _mm256_set1_pd(t.std);
    auto four = [&](size_t i) { return normal4(load_words(random + 8 * i), mean, std); };
    if (t.dtype == Dtype::f64) {
      for (size_t i = 0; i < n; i += 4) _mm256_storeu_pd(reinterpret_cast<double*>(dst) + i, four(i));
      return true;
    }
    auto eight = [&](size_t i) {
      return _mm256_set_m128(_mm256_cvtpd_ps(four(i + 4)), _mm256_cvtpd_ps(four(i)));
    };
    for (size_t i = 0; i < n; i += 16)
      store_floats(dst + element_size(t.dtype) * i, t.dtype, eight(i), eight(i + 8));
    return true;
  }
  if (t.dist == Dist::integers && words_per_element(t) == 1) {
    const bool all = t.count == (uint64_t(1) << 32);
    const __m256i count = _mm256_set1_epi64x(static_cast<long long>(t.count));
    const __m256i first = _mm256_set1_epi32(static_cast<int>(uint32_t(t.first)));
    auto eight = [&](size_t i) {
      const __m256i w = load_words(random + 4 * i);
      return _mm256_add_epi32(first, all ? w : mulhi32(w, count));
    };
    const size_t width = element_size(t.dtype);
    const __m256i low16 = _mm256_set1_epi32(0xFFFF), low8 = _mm256_set1_epi32(0xFF);
    for (size_t i = 0; i < n; i += 32) {
      uint8_t* p = dst + width * i;
      if (width == 4) {
        for (size_t j = 0; j < 32; j += 8)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 4 * j), eight(i + j));
      } else if (width == 2) {
        for (size_t j = 0; j < 32; j += 16)
          store16(p + 2 * j, _mm256_and_si256(eight(i + j), low16),
                  _mm256_and_si256(eight(i + j + 8), low16));
      } else {
        const __m256i ab = _mm256_packus_epi32(_mm256_and_si256(eight(i), low8),
                                               _mm256_and_si256(eight(i + 8), low8));
        const __m256i cd = _mm256_packus_epi32(_mm256_and_si256(eight(i + 16), low8),
                                               _mm256_and_si256(eight(i + 24), low8));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                            _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd),
                                                        _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
      }
    }
    return true;
  }
  return false;
}

// 32-byte loads from the ring (the pad makes the one that crosses its end whole) and
// aligned non-temporal stores; plain stores only for the bytes off the 16-byte grid.
inline void ring_copy(uint8_t* dst, const uint8_t* ring, size_t ring_size, size_t start, size_t n) {
  const auto bytes = [&](size_t m) {
    for (size_t k; m > 0; m -= k, n -= k, dst += k) {
      k = std::min(m, ring_size - start);
      std::memcpy(dst, ring + start, k);
      start = start + k == ring_size ? 0 : start + k;
    }
  };
  // 16 bytes on a 16-byte boundary (malloc'd buffers such as bytearray) go non-temporal
  // too: a line written both ways is slow.
  const auto half = [&] {
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst),
                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(ring + start)));
    dst += 16, n -= 16, start += 16;
    if (start >= ring_size) start -= ring_size;
  };
  if (reinterpret_cast<uintptr_t>(dst) % 32 == 16 && n >= 16)
    half();
  else
    bytes(std::min(n, (32 - reinterpret_cast<uintptr_t>(dst) % 32) % 32));
  while (n >= 32) {
    // The pieces that start before the ring's end, then wrap.
    const size_t pieces = std::min(n / 32, (ring_size - start + 31) / 32);
    const uint8_t* from = ring + start;
    for (size_t i = 0; i < pieces; ++i, from += 32, dst += 32)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(dst),
                          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(from)));
    n -= 32 * pieces;
    start += 32 * pieces;
    if (start >= ring_size) start -= ring_size;
  }
  if (n >= 16 && reinterpret_cast<uintptr_t>(dst) % 16 == 0) half();
  bytes(n);
}

}  // namespace
}  // namespace dgen::kernels
