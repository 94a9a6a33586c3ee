// AVX-512 path: one 8-lane Xoshiro256++ vector per step (64 bytes, the whole step) with
// native 64-bit rotates; compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq.
// GCC 12's AVX-512 intrinsics start some results from _mm512_undefined_*(), which its
// -Wmaybe-uninitialized reports at every use (fixed in GCC 13): a false alarm here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "avx2_parts.hpp"
#include "kernels.hpp"
#include "page_seed.hpp"
#include "typed.hpp"
#include "uniform.hpp"

namespace dgen::kernels {
namespace {

// The 8 lanes of a page: lane l's output is bytes [8l, 8l + 8) of the step, so one
// register's output is the step as it lies in memory.
struct Lanes {
  __m512i s0, s1, s2, s3;
  explicit Lanes(const uint64_t* w)
      : s0(_mm512_loadu_si512(w)), s1(_mm512_loadu_si512(w + 8)),
        s2(_mm512_loadu_si512(w + 16)), s3(_mm512_loadu_si512(w + 24)) {}
  // The xors of Xoshiro256++ as three-input ternary logic (0x96: a ^ b ^ c): 9 vector
  // operations per step where the plain form takes 10.
  inline __m512i next() {
    const __m512i out = _mm512_add_epi64(_mm512_rol_epi64(_mm512_add_epi64(s0, s3), 23), s0);
    const __m512i t = _mm512_slli_epi64(s1, 17);
    const __m512i x3 = _mm512_xor_si512(s3, s1);                // s3 ^= s1
    const __m512i x1 = _mm512_ternarylogic_epi64(s1, s2, s0, 0x96);  // s1 ^= (s2 ^= s0)
    s2 = _mm512_ternarylogic_epi64(s2, s0, t, 0x96);            // s2 ^= s0, then ^= t
    s0 = _mm512_xor_si512(s0, x3);                              // s0 ^= s3
    s1 = x1;
    s3 = _mm512_rol_epi64(x3, 45);
    return out;
  }
};

// v's first n bytes (all of them when n >= 64), then the filler.
inline __m512i random_first(__m512i v, __m512i filler, uint32_t n) {
  const __mmask64 keep = n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
  return _mm512_mask_blend_epi8(keep, filler, v);
}

// 16-byte non-temporal stores of v's bytes [from, to) (multiples of 16) to p.
inline void stream_part(uint8_t* p, __m512i v, int from, int to) {
  alignas(64) uint8_t b[64];
  _mm512_store_si512(b, v);
  for (int k = from; k < to; k += 16)
    _mm_stream_si128(reinterpret_cast<__m128i*>(p + k - from),
                     _mm_load_si128(reinterpret_cast<const __m128i*>(b + k)));
}

// Where a run's 64-byte steps go. O < 0: plain stores, any alignment (Zen 4 stores across
// two lines at little cost: realigning plain stores as below ran 15% slower). O = dst % 64, a
// multiple of 16: aligned non-temporal stores, each line the last O bytes of one step and
// the first 64 - O of the next (one lane shuffle); the run's first and last partial lines
// in 16-byte non-temporal pieces, since a line written both ways is slow.
template <int O>
class Out {
 public:
  explicit Out(uint8_t* dst) : p_(dst) {}
  inline void put(__m512i v) {
    if constexpr (O < 0) {
      _mm512_storeu_si512(p_, v);
    } else if constexpr (O == 0) {
      _mm512_stream_si512(reinterpret_cast<__m512i*>(p_), v);
    } else {
      if (started_) [[likely]]
        _mm512_stream_si512(reinterpret_cast<__m512i*>(p_ - O),
                            _mm512_alignr_epi64(v, prev_, (64 - O) / 8));
      else
        stream_part(p_, v, 0, 64 - O), started_ = true;
      prev_ = v;
    }
    p_ += 64;
  }
  void finish() {
    if constexpr (O > 0)
      if (started_) stream_part(p_ - O, prev_, 64 - O, 64);
  }

 private:
  uint8_t* p_;
  __m512i prev_ = _mm512_setzero_si512();
  bool started_ = false;
};

// One page from its seed words `w`: `r` random bytes, then the filler. Meanwhile, when
// `next` is set, one SplitMix64 word per step seeds the following page into `nw` from
// `next_key`: the integer units are idle while the vector units generate.
template <class Sink>
inline void page_with(Sink& out, const uint64_t (&w)[kSeedWords], uint32_t r, bool next,
                      uint64_t next_key, uint64_t (&nw)[kSeedWords]) {
  const __m512i filler = _mm512_set1_epi64(static_cast<long long>(w[4 * kLanes]));
  Lanes a(w);
  const uint32_t whole = r & ~63u;
  const uint32_t seeded = next ? std::min<uint32_t>(whole, 64 * 4 * kLanes) : 0;
  uint64_t x = next_key;
  int k = 0;
  uint32_t j = 0;
  for (; j < seeded; j += 64, ++k) {
    out.put(a.next());
    nw[k] = splitmix_next(x);
  }
  for (; j < whole; j += 64) out.put(a.next());
  if (j < r) {
    out.put(random_first(a.next(), filler, r - j));
    j += 64;
  }
  for (; j < 4096; j += 64) out.put(filler);
  // The rest of the next seed after the stores, which it overlaps as they drain.
  for (; next && k < kSeedWords; ++k) nw[k] = seed_word(x, k);
}

// Touches page i + 16 of base (a prefetch never faults), so that its address translation
// is ready when page i's pair gets there (avx2.cpp says why): pairs go through pages twice
// as fast as one page at a time, which touches 8 ahead, so twice as far keeps the same lead.
// (Measured at 16 MiB, before pairs stopped at kPairedLimit: 8 ahead 29 GB/s, 16 ahead 41.)
inline void touch_ahead(const void* base, size_t i) {
  _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(base) + 4096 * (i + 16)),
               _MM_HINT_T0);
}

// Two pages at once, their steps alternating. One page's steps are a chain of dependent
// vector operations that leaves the units idle part of the time; a second, independent
// chain fills them (fill_bench, 1 MiB: 38 GB/s one page at a time, 42 in pairs). Meanwhile the
// two pages after them (`next` of them, 0..2) are seeded from next_keys into na and nb.
template <class Sink>
inline void pair_with(Sink& oa, Sink& ob, const uint64_t (&wa)[kSeedWords],
                      const uint64_t (&wb)[kSeedWords], uint32_t r, size_t next,
                      const uint64_t* next_keys, uint64_t (&na)[kSeedWords],
                      uint64_t (&nb)[kSeedWords]) {
  const __m512i fa = _mm512_set1_epi64(static_cast<long long>(wa[4 * kLanes]));
  const __m512i fb = _mm512_set1_epi64(static_cast<long long>(wb[4 * kLanes]));
  Lanes a(wa), b(wb);
  const uint32_t whole = r & ~63u;
  const uint32_t seeded = next ? std::min<uint32_t>(whole, 64 * 4 * kLanes) : 0;
  uint64_t xa = next > 0 ? next_keys[0] : 0, xb = next > 1 ? next_keys[1] : 0;
  int k = 0;
  uint32_t j = 0;
  for (; j < seeded; j += 64, ++k) {
    oa.put(a.next());
    ob.put(b.next());
    na[k] = splitmix_next(xa);
    nb[k] = splitmix_next(xb);  // unused when next is 1
  }
  for (; j < whole; j += 64) {
    oa.put(a.next());
    ob.put(b.next());
  }
  if (j < r) {
    oa.put(random_first(a.next(), fa, r - j));
    ob.put(random_first(b.next(), fb, r - j));
    j += 64;
  }
  for (; j < 4096; j += 64) {
    oa.put(fa);
    ob.put(fb);
  }
  for (; next && k < kSeedWords; ++k) {
    na[k] = seed_word(xa, k);
    nb[k] = seed_word(xb, k);
  }
}

// Pages 0..count-1 into sink(i), two at a time (the last alone when count is odd), while
// each pair's sinks leave go_on(sa, sb) true; false if one did not.
template <class MakeSink, class GoOn>
bool in_pairs(const uint64_t* keys, size_t count, uint32_t r, MakeSink sink, GoOn go_on) {
  uint64_t words[4][kSeedWords];
  seed_page(keys[0], words[0]);
  if (count > 1) seed_page(keys[1], words[1]);
  size_t i = 0;
  for (int h = 0; i + 1 < count; i += 2, h ^= 2) {
    auto sa = sink(i), sb = sink(i + 1);
    pair_with(sa, sb, words[h], words[h + 1], r, std::min<size_t>(count - i - 2, 2), keys + i + 2,
              words[h ^ 2], words[(h ^ 2) + 1]);
    if (!go_on(sa, sb)) return false;
  }
  if (i < count) {
    auto s = sink(i);
    uint64_t unused[kSeedWords];
    page_with(s, words[i % 4], r, false, 0, unused);
    return go_on(s, s);
  }
  return true;
}

template <int O>
void pages_with(uint8_t* dst, const uint64_t* keys, size_t count, uint32_t r) {
  Out<O> out(dst);
  uint64_t words[2][kSeedWords];
  seed_page(keys[0], words[0]);
  for (size_t i = 0; i < count; ++i) {
    // Touch the page 32 KiB ahead of the stores (a prefetch never faults), so that its
    // address translation is ready when they get there (avx2.cpp says why).
    _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(dst) + 4096 * (i + 8)),
                 _MM_HINT_T0);
    const bool next = i + 1 < count;
    page_with(out, words[i % 2], r, next, next ? keys[i + 1] : 0, words[(i + 1) % 2]);
  }
  out.finish();
}

void pages(uint8_t* dst, const uint64_t* keys, size_t count, uint32_t random_len, Stores stores) {
  if (count == 0) return;
  if (stores == Stores::paired) {
    in_pairs(
        keys, count, random_len,
        [dst](size_t i) {
          touch_ahead(dst, i);
          return Out<-1>(dst + 4096 * i);
        },
        [](const Out<-1>&, const Out<-1>&) { return true; });
    return;
  }
  switch (stores == Stores::stream ? reinterpret_cast<uintptr_t>(dst) % 64 : 1) {
    case 0: return pages_with<0>(dst, keys, count, random_len);
    case 16: return pages_with<16>(dst, keys, count, random_len);
    case 32: return pages_with<32>(dst, keys, count, random_len);
    case 48: return pages_with<48>(dst, keys, count, random_len);
    default: return pages_with<-1>(dst, keys, count, random_len);
  }
}

void fence() { _mm_sfence(); }

// A sink for page_with() that compares each step with the data instead of storing it: one
// load and one ternary-logic operation (acc | (v ^ data)) per 64 bytes.
class Compare {
 public:
  explicit Compare(const uint8_t* data) : p_(data) {}
  inline void put(__m512i v) {
    acc_ = _mm512_ternarylogic_epi64(acc_, v, _mm512_loadu_si512(p_), 0xF6);
    p_ += 64;
  }
  bool same() const { return _mm512_test_epi64_mask(acc_, acc_) == 0; }

 private:
  const uint8_t* p_;
  __m512i acc_ = _mm512_setzero_si512();
};

bool equal(const uint8_t* data, const uint64_t* keys, size_t count, uint32_t r, bool paired) {
  if (count == 0) return true;
  if (!paired) {
    Compare cmp(data);
    uint64_t words[2][kSeedWords];
    seed_page(keys[0], words[0]);
    for (size_t i = 0; i < count; ++i) {
      const bool next = i + 1 < count;
      page_with(cmp, words[i % 2], r, next, next ? keys[i + 1] : 0, words[(i + 1) % 2]);
      if (!cmp.same()) return false;
    }
    return true;
  }
  return in_pairs(
      keys, count, r,
      [data](size_t i) {
        touch_ahead(data, i);
        return Compare(data + 4096 * i);
      },
      [](const Compare& a, const Compare& b) { return a.same() && b.same(); });
}

// shifted(): the steps as pages() makes them, each as two 32-byte pieces into avx2_parts'
// Realigned writer.
template <bool Upper>
void shifted_with(uint8_t* dst, const uint64_t* keys, size_t skip, size_t n, uint32_t r) {
  Realigned<Upper> out(dst, int64_t(skip) - int64_t(reinterpret_cast<uintptr_t>(dst) % 32), n);
  // The pages needed: from skip's page to n's end (earlier and later pieces are dropped).
  const size_t first = skip / 4096, last = (skip + n - 1) / 4096;
  uint64_t words[2][kSeedWords];
  seed_page(keys[first], words[0]);
  int64_t g = int64_t(128 * first);
  for (size_t i = first; i <= last; ++i) {
    const uint64_t* w = words[(i - first) % 2];
    uint64_t* nw = words[(i - first + 1) % 2];
    const bool next = i < last;
    uint64_t x = next ? keys[i + 1] : 0;
    const __m512i filler = _mm512_set1_epi64(static_cast<long long>(w[4 * kLanes]));
    Lanes a(w);
    uint32_t j = 0;
    int k = 0;
    for (; j < r; j += 64) {
      const __m512i v = random_first(a.next(), filler, r - j);
      out.put(g++, _mm512_castsi512_si256(v));
      out.put(g++, _mm512_extracti64x4_epi64(v, 1));
      if (next && k < 4 * kLanes) nw[k++] = splitmix_next(x);  // as page_with() seeds
    }
    out.put_filler(g, (4096 - j) / 32, _mm512_castsi512_si256(filler));
    g += (4096 - j) / 32;
    for (; next && k < kSeedWords; ++k) nw[k] = seed_word(x, k);
  }
  out.finish(g);
}

void shifted(uint8_t* dst, const uint64_t* keys, size_t, size_t skip, size_t n, uint32_t r) {
  if (n == 0) return;
  const int64_t t = int64_t(skip) - int64_t(reinterpret_cast<uintptr_t>(dst) % 32);
  if (t - 32 * (t >= 0 ? t / 32 : -1) >= 16)
    shifted_with<true>(dst, keys, skip, n, r);
  else
    shifted_with<false>(dst, keys, skip, n, r);
}

// Sixteen values from the 64 bytes of one step, as uniform_value() makes them. Without
// Clamp where no value reaches high (see uniform()).
template <bool Clamp>
inline __m512 to_uniform16(__m512i w, __m512 low, __m512 step, __m512 high, __m512 below) {
  const __m512 k = _mm512_cvtepi32_ps(_mm512_srli_epi32(w, 8));
  const __m512 v = _mm512_add_ps(low, _mm512_mul_ps(k, step));
  if constexpr (!Clamp) return v;
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, high, _CMP_LT_OQ), below, v);
}

// The pages of random_len 4096 that pages() would make, converted in registers. As there,
// the next block's lanes are seeded one SplitMix64 word per step. Stream: 64 (streaming
// zmm stores), 32 (two ymm ones, for destinations 32 bytes off the 64-byte grid) or 0.
template <int Stream, bool Clamp>
void uniform_with(float* dst, const uint64_t* keys, size_t count, const UniformScale& s) {
  const __m512 low = _mm512_set1_ps(s.low), step = _mm512_set1_ps(s.step);
  const __m512 high = _mm512_set1_ps(s.high), below = _mm512_set1_ps(s.below_high);
  uint64_t words[2][kSeedWords];
  seed_page(keys[0], words[0]);
  for (size_t i = 0; i < count; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(dst + kUniformBlock * (i + 8)), _MM_HINT_T0);
    const uint64_t* w = words[i % 2];
    uint64_t* nw = words[(i + 1) % 2];
    const bool next = i + 1 < count;
    uint64_t x = next ? keys[i + 1] : 0;
    Lanes a(w);
    float* p = dst + kUniformBlock * i;
    for (int j = 0; j < 64; ++j, p += 16) {
      const __m512 v = to_uniform16<Clamp>(a.next(), low, step, high, below);
      if constexpr (Stream == 64) {
        _mm512_stream_ps(p, v);
      } else if constexpr (Stream == 32) {
        _mm256_stream_ps(p, _mm512_castps512_ps256(v));
        _mm256_stream_ps(p + 8, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
      } else {
        _mm512_storeu_ps(p, v);
      }
      if (next && j < 4 * kLanes) nw[j] = splitmix_next(x);  // the filler is not needed
    }
  }
}

template <int Stream>
void uniform_at(float* dst, const uint64_t* keys, size_t count, const UniformScale& s) {
  // Rounding is monotonic, so the largest word, 2^24 - 1 after the shift, gives the
  // largest value: when that is below high, no value needs the clamp.
  if (top_below_high(s))
    uniform_with<Stream, false>(dst, keys, count, s);
  else
    uniform_with<Stream, true>(dst, keys, count, s);
}

// uniform_with<0>'s steps as a sink for in_pairs().
template <bool Clamp>
class UniformOut {
 public:
  UniformOut(float* p, const UniformScale& s)
      : p_(p), low_(_mm512_set1_ps(s.low)), step_(_mm512_set1_ps(s.step)),
        high_(_mm512_set1_ps(s.high)), below_(_mm512_set1_ps(s.below_high)) {}
  inline void put(__m512i w) {
    _mm512_storeu_ps(p_, to_uniform16<Clamp>(w, low_, step_, high_, below_));
    p_ += 16;
  }

 private:
  float* p_;
  __m512 low_, step_, high_, below_;
};

// Blocks two at a time, as pages() pairs pages (2 MiB: 27 GB/s a block at a time, 29 in
// pairs; the conversion leaves the vector units less idle time to fill than pages do).
template <bool Clamp>
void uniform_paired(float* dst, const uint64_t* keys, size_t count, const UniformScale& s) {
  in_pairs(
      keys, count, 4096,
      [dst, &s](size_t i) {
        touch_ahead(dst, i);
        return UniformOut<Clamp>(dst + kUniformBlock * i, s);
      },
      [](const UniformOut<Clamp>&, const UniformOut<Clamp>&) { return true; });
}

void uniform(float* dst, const uint64_t* keys, size_t count, const UniformScale& s,
             Stores stores) {
  if (count == 0) return;
  const auto addr = reinterpret_cast<uintptr_t>(dst);
  const bool stream = stores == Stores::stream;
  if (stores == Stores::paired)
    top_below_high(s) ? uniform_paired<false>(dst, keys, count, s)
                      : uniform_paired<true>(dst, keys, count, s);
  else if (stream && addr % 64 == 0)
    uniform_at<64>(dst, keys, count, s);
  else if (stream && addr % 32 == 0)
    uniform_at<32>(dst, keys, count, s);
  else
    uniform_at<0>(dst, keys, count, s);
}

// Typed blocks: float32 uniform is uniform() itself; the rest makes each block's page in
// an L1 buffer and converts it with avx2_parts' conversions.
void typed(uint8_t* dst, const uint64_t* keys, size_t count, const TypedSpec& t, Stores stores) {
  if (count == 0) return;
  if (t.dtype == Dtype::f32 && t.dist == Dist::uniform) {
    uniform(reinterpret_cast<float*>(dst), keys, count, t.f, stores);
    if (stores == Stores::stream) fence();
    return;
  }
  alignas(64) uint8_t random[4096];
  const size_t block_bytes = block_elements(t) * element_size(t.dtype);
  for (size_t i = 0; i < count; ++i) {
    pages_with<-1>(random, keys + i, 1, sizeof random);
    if (!typed_block(dst + block_bytes * i, random, t)) typed_portable(dst + block_bytes * i, random, t);
  }
}

}  // namespace

const Table* avx512() {
  static const Table t{"avx512", pages, fence, uniform, typed, ring_copy, shifted, equal};
  return &t;
}

}  // namespace dgen::kernels
