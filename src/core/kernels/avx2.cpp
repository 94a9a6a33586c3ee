// AVX2 path: two 4-lane Xoshiro256++ vectors per step (64 bytes), compiled with -mavx2.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels.hpp"
#include "avx2_parts.hpp"
#include "page_seed.hpp"
#include "typed.hpp"
#include "uniform.hpp"

namespace dgen::kernels {
namespace {

// Where a page's 32-byte pieces go and how. Aligned16 is for destinations 16 bytes off a
// 32-byte boundary (malloc'd buffers such as bytearray): the pieces start 16 bytes into the
// page so that every one is an aligned non-temporal store.
enum class Store { Unaligned, Aligned32, Aligned16 };

template <Store S>
inline void put(uint8_t*& p, __m256i v) {
  if constexpr (S == Store::Unaligned)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  else
    _mm256_stream_si256(reinterpret_cast<__m256i*>(p), v);
  p += 32;
}

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

// Lanes l, l+1 from the seed words, then the low two lanes of v.
inline __m256i join(const uint64_t* p, __m256i v) {
  return _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
      _mm256_castsi256_si128(v), 1);
}

// One page from its seed words `w`: `r` random bytes, then the filler. Meanwhile, when
// `next` is set, one SplitMix64 word per 64-byte step seeds the following page into `nw`
// from `next_key`: the integer units are idle while the vector units generate.
template <Store S>
void page_with(uint8_t* dst, const uint64_t (&w)[kSeedWords], uint32_t r, bool next,
               uint64_t next_key, uint64_t (&nw)[kSeedWords]) {
  constexpr uint32_t shift = S == Store::Aligned16 ? 16 : 0;
  constexpr uint32_t end = 4096 - shift;  // where the last whole piece ends
  const __m256i filler = _mm256_set1_epi64x(static_cast<long long>(w[4 * kLanes]));
  Lanes a, b;  // the step's bytes [shift, shift + 32) and [shift + 32, shift + 64)
  if constexpr (shift == 0) {
    a = {load(w + 0), load(w + 8), load(w + 16), load(w + 24)};   // lanes 0-3
    b = {load(w + 4), load(w + 12), load(w + 20), load(w + 28)};  // lanes 4-7
  } else {
    // Bytes [0, 16) are lanes 0 and 1 of step 0; after that the lanes run rotated:
    // 2-5, then 6, 7 and a step ahead 0, 1.
    Lanes z{load(w + 0), load(w + 8), load(w + 16), load(w + 24)};
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst),
                     _mm256_castsi256_si128(random_first(z.next(), filler, r)));
    a = {load(w + 2), load(w + 10), load(w + 18), load(w + 26)};
    b = {join(w + 6, z.s0), join(w + 14, z.s1), join(w + 22, z.s2), join(w + 30, z.s3)};
  }

  uint8_t* p = dst + shift;
  const uint32_t whole = r < end ? r : end;
  const uint32_t seeded = next ? std::min(whole, shift + 64 * 4 * kLanes) : 0;
  uint64_t x = next_key;
  int k = 0;
  uint32_t j = shift;
  for (; j + 64 <= seeded; j += 64, ++k) {
    put<S>(p, a.next());
    put<S>(p, b.next());
    nw[k] = splitmix_next(x);
  }
  for (; j + 64 <= whole; j += 64) {
    put<S>(p, a.next());
    put<S>(p, b.next());
  }

  __m256i last = filler;  // with shift 16, the piece cut by the page's end
  if (j < r) {            // the step holding the end of the random part
    put<S>(p, random_first(a.next(), filler, r - j));
    const __m256i v = random_first(b.next(), filler, r > j + 32 ? r - j - 32 : 0);
    if (j + 32 < end) {
      put<S>(p, v);
      j += 64;
    } else {
      last = v;
      j += 32;
    }
  }
  for (; j < end; j += 32) put<S>(p, filler);
  if constexpr (shift != 0)
    _mm_stream_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(last));
  // The rest of the next seed after the stores, which it overlaps as they drain.
  for (; next && k < kSeedWords; ++k) nw[k] = seed_word(x, k);
}

template <Store S>
void pages_with(uint8_t* dst, const uint64_t* keys, size_t count, uint32_t r) {
  uint64_t words[2][kSeedWords];
  seed_page(keys[0], words[0]);
  for (size_t i = 0; i < count; ++i) {
    // Touch the page 32 KiB ahead of the stores, past this run if need be (a prefetch never
    // faults), so that its address translation is ready when they get there: otherwise
    // every new 4 KiB page stalls the stores on a page walk, which costs the most under
    // virtualization (up to +50% on 32 MiB fills in a VM).
    _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(dst) + 4096 * (i + 8)),
                 _MM_HINT_T0);
    const bool next = i + 1 < count;
    page_with<S>(dst + 4096 * i, words[i % 2], r, next, next ? keys[i + 1] : 0,
                 words[(i + 1) % 2]);
  }
}

// Stores::paired is plain here: 8 lanes are two registers, two chains already.
void pages(uint8_t* dst, const uint64_t* keys, size_t count, uint32_t random_len, Stores stores) {
  if (count == 0) return;
  const bool stream = stores == Stores::stream;
  const auto addr = reinterpret_cast<uintptr_t>(dst);
  if (stream && addr % 32 == 0)
    pages_with<Store::Aligned32>(dst, keys, count, random_len);
  else if (stream && addr % 16 == 0)
    pages_with<Store::Aligned16>(dst, keys, count, random_len);
  else
    pages_with<Store::Unaligned>(dst, keys, count, random_len);
}

void fence() { _mm_sfence(); }

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
    const __m256i filler = _mm256_set1_epi64x(static_cast<long long>(w[4 * kLanes]));
    Lanes a{load(w + 0), load(w + 8), load(w + 16), load(w + 24)};   // lanes 0-3
    Lanes b{load(w + 4), load(w + 12), load(w + 20), load(w + 28)};  // lanes 4-7
    uint32_t j = 0;
    int k = 0;
    for (; j + 64 <= r; j += 64) {
      out.put(g++, a.next());
      out.put(g++, b.next());
      if (next && k < 4 * kLanes) nw[k++] = splitmix_next(x);  // as page_with() seeds
    }
    if (j < r) {
      out.put(g++, random_first(a.next(), filler, r - j));
      out.put(g++, random_first(b.next(), filler, r > j + 32 ? r - j - 32 : 0));
      j += 64;
    }
    out.put_filler(g, (4096 - j) / 32, filler);
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

// The pages of random_len 4096 that pages() would make, converted in registers. As there,
// the next block's lanes are seeded one SplitMix64 word per step.
template <bool Stream, bool Clamp>
void uniform_with(float* dst, const uint64_t* keys, size_t count, const UniformScale& s) {
  const __m256 low = _mm256_set1_ps(s.low), step = _mm256_set1_ps(s.step);
  const __m256 high = _mm256_set1_ps(s.high), below = _mm256_set1_ps(s.below_high);
  uint64_t words[2][kSeedWords];
  seed_page(keys[0], words[0]);
  for (size_t i = 0; i < count; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(dst + kUniformBlock * (i + 8)), _MM_HINT_T0);
    const uint64_t* w = words[i % 2];
    uint64_t* nw = words[(i + 1) % 2];
    const bool next = i + 1 < count;
    uint64_t x = next ? keys[i + 1] : 0;
    Lanes a{load(w + 0), load(w + 8), load(w + 16), load(w + 24)};   // lanes 0-3
    Lanes b{load(w + 4), load(w + 12), load(w + 20), load(w + 28)};  // lanes 4-7
    float* p = dst + kUniformBlock * i;
    for (int j = 0; j < 64; ++j, p += 16) {
      const __m256 va = to_uniform<Clamp>(a.next(), low, step, high, below);
      const __m256 vb = to_uniform<Clamp>(b.next(), low, step, high, below);
      if constexpr (Stream) {
        _mm256_stream_ps(p, va);
        _mm256_stream_ps(p + 8, vb);
      } else {
        _mm256_storeu_ps(p, va);
        _mm256_storeu_ps(p + 8, vb);
      }
      if (next && j < 4 * kLanes) nw[j] = splitmix_next(x);
    }
  }
}

void uniform(float* dst, const uint64_t* keys, size_t count, const UniformScale& s,
             Stores stores) {
  if (count == 0) return;
  const bool aligned = stores == Stores::stream && reinterpret_cast<uintptr_t>(dst) % 32 == 0;
  if (top_below_high(s))
    aligned ? uniform_with<true, false>(dst, keys, count, s)
            : uniform_with<false, false>(dst, keys, count, s);
  else
    aligned ? uniform_with<true, true>(dst, keys, count, s)
            : uniform_with<false, true>(dst, keys, count, s);
}

// Typed blocks: float32 uniform is uniform() itself; the rest makes each block's page in
// an L1 buffer and converts it.
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
    pages_with<Store::Unaligned>(random, keys + i, 1, sizeof random);
    if (!typed_block(dst + block_bytes * i, random, t)) typed_portable(dst + block_bytes * i, random, t);
  }
}

// Each page made in L1, then compared.
bool equal(const uint8_t* data, const uint64_t* keys, size_t count, uint32_t random_len, bool) {
  alignas(64) uint8_t buf[4096];
  for (size_t i = 0; i < count; ++i) {
    pages_with<Store::Unaligned>(buf, keys + i, 1, random_len);
    if (std::memcmp(buf, data + 4096 * i, 4096) != 0) return false;
  }
  return true;
}

}  // namespace

const Table* avx2() {
  static const Table t{"avx2", pages, fence, uniform, typed, ring_copy, shifted, equal};
  return &t;
}

}  // namespace dgen::kernels
