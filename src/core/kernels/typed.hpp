// Random words to typed tensor elements (docs/data-model.md, "Typed tensors"), shared by
// every kernel. Internal linkage and -ffp-contract=off as uniform.hpp: only correctly
// rounded IEEE operations (+ - * / sqrt, floor, conversions), no libm, so that every
// machine and every ISA path gets the same bits.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels.hpp"
#include "uniform.hpp"

namespace dgen::kernels {
namespace {

inline constexpr double kLn2 = 0.6931471805599453;  // nearest double to ln 2
inline constexpr double kLn2Hi = 0.693147180369123816490;  // ln 2 in two parts, for exp
inline constexpr double kLn2Lo = 1.90821492927058770002e-10;
inline constexpr double kHalfPi = 1.5707963267948966;

// ln x for finite x > 0 (normal doubles): x = m 2^e with m in [sqrt(1/2), sqrt(2)), then
// ln m = 2 atanh(f) with f = (m - 1) / (m + 1), |f| < 0.172, from 12 terms of its series.
inline double log_d(double x) {
  uint64_t b = std::bit_cast<uint64_t>(x);
  int64_t e = int64_t(b >> 52) - 1023;
  b = (b & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;  // m in [1, 2)
  if (b > 0x3FF6A09E667F3BCDull) {                          // m > sqrt(2): halve it
    b -= 0x0010000000000000ull;
    e += 1;
  }
  const double m = std::bit_cast<double>(b);
  const double f = (m - 1.0) / (m + 1.0), s = f * f;
  double p = 1.0 / 23;
  for (int k = 10; k >= 0; --k) p = p * s + 1.0 / (2 * k + 1);
  return double(e) * kLn2 + 2.0 * f * p;
}

// e^z for z in [-700, 700]: z = k ln 2 + r with k = floor(z / ln 2 + 1/2), |r| <= 0.35,
// e^r from 15 terms of its series, times 2^k. The series multiply by rounded reciprocals
// (1 / n as a double): a division per term would cost the vector units most of their time.
inline double exp_d(double z) {
  const double k = std::floor(z * (1.0 / kLn2) + 0.5);
  const double r = (z - k * kLn2Hi) - k * kLn2Lo;
  double p = 1.0;
  for (int n = 14; n >= 1; --n) p = p * r * (1.0 / n) + 1.0;
  return p * std::bit_cast<double>(uint64_t(int64_t(k) + 1023) << 52);
}

// cos(2 pi w / 2^32): quadrant q = w >> 30 and theta = ((w mod 2^30) + 1/2) 2^-30 pi/2,
// cos and sin of theta from 12 terms of their series.
inline double cos_turn(uint32_t w) {
  const double t = (double(w & 0x3FFFFFFFu) + 0.5) * (kHalfPi * 0x1p-30), t2 = t * t;
  double c = 1.0, s = 1.0;
  for (int n = 22; n >= 2; n -= 2) {
    c = 1.0 - c * t2 * (1.0 / (double(n) * (n - 1)));
    s = 1.0 - s * t2 * (1.0 / (double(n + 1) * n));
  }
  s *= t;
  const uint32_t q = w >> 30;
  const double v = q & 1 ? s : c;
  return ((q + 1) >> 1) & 1 ? -v : v;
}

// The largest |normal_value|, rounded up: sqrt(-2 ln 2^-33) = 6.7637...
inline constexpr double kMaxNormal = 6.77;

// A standard normal value from one 64-bit word (Box-Muller, cosine branch): radius from
// the low 32 bits, u = (lo + 1/2) 2^-32, angle from the high 32 bits.
inline double normal_value(uint64_t x) {
  const double u = (double(uint32_t(x)) + 0.5) * 0x1p-32;
  return std::sqrt(-2.0 * log_d(u)) * cos_turn(uint32_t(x >> 32));
}

// float32 to float16 bits, rounded to nearest even; 65520 and above (in magnitude) become
// infinity. No NaN arrives here.
inline uint16_t half_bits(float f) {
  const uint32_t b = std::bit_cast<uint32_t>(f), a = b & 0x7FFFFFFFu;
  const uint32_t sign = (b >> 16) & 0x8000u;
  uint32_t h;
  if (a >= 0x477FF000u) {  // 65520: rounds past the largest half
    h = 0x7C00u;
  } else if (a < 0x38800000u) {  // below 2^-14: subnormal, rounded by the addition
    h = std::bit_cast<uint32_t>(std::bit_cast<float>(a) + 0.5f) - 0x3F000000u;
  } else {  // rebias the exponent, round the 13 dropped bits to nearest even
    h = (a + 0xC8000FFFu + ((a >> 13) & 1)) >> 13;
  }
  return uint16_t(sign | h);
}

// float32 to bfloat16 bits (the top 16), rounded to nearest even.
inline uint16_t bfloat_bits(float f) {
  const uint32_t b = std::bit_cast<uint32_t>(f);
  return uint16_t((b + 0x7FFFu + ((b >> 16) & 1)) >> 16);
}

inline uint64_t mulhi64(uint64_t a, uint64_t b) {
  return uint64_t((unsigned __int128)a * b >> 64);
}

// One Zipf rank in [1, count] from the uniform u in [0, 1) (TypedSpec).
inline uint64_t zipf_rank(double u, const TypedSpec& t) {
  const double y = t.c0 + u * t.c1;
  const double x = std::floor(exp_d(t.log_form ? log_d(y) * t.inv_t : y) + 0.5);
  const double last = double(t.count);
  return x < 1.0 ? 1 : x > last ? t.count : uint64_t(x);
}

inline void store(uint8_t* p, uint64_t v, size_t width) {
  static_assert(std::endian::native == std::endian::little);
  std::memcpy(p, &v, width);
}

inline float clamped(float v, const TypedSpec& t) {
  return v < t.clamp_lo ? t.clamp_lo : v > t.clamp_hi ? t.clamp_hi : v;
}

// Element i of the block for i in [0, n), as an integer of the dtype's width (the float
// types as their bits): one loop per case, so that each compiles to straight-line code.
template <class F>
inline void each(uint8_t* dst, size_t n, size_t width, F value) {
  for (size_t i = 0; i < n; ++i) store(dst + width * i, value(i), width);
}

inline uint32_t word32(const uint8_t* random, size_t i) {
  uint32_t w;
  std::memcpy(&w, random + 4 * i, 4);
  return w;
}
inline uint64_t word64(const uint8_t* random, size_t i) {
  uint64_t x;
  std::memcpy(&x, random + 8 * i, 8);
  return x;
}

// A float32 in the dtype's 2 or 4 bytes.
inline uint32_t float_bits(float v, Dtype d) {
  return d == Dtype::f16 ? half_bits(v) : d == Dtype::bf16 ? bfloat_bits(v)
                                                           : std::bit_cast<uint32_t>(v);
}

inline void typed_portable(uint8_t* dst, const uint8_t* r, const TypedSpec& t) {
  const size_t width = element_size(t.dtype), n = block_elements(t);
  const Dtype d = t.dtype;
  switch (t.dist) {
    case Dist::uniform:
      if (d == Dtype::f64)
        return each(dst, n, width, [&](size_t i) {
          const double v = t.low + double(word64(r, i) >> 12) * t.step;
          return std::bit_cast<uint64_t>(v < t.high ? v : t.below_high);
        });
      return each(dst, n, width, [&](size_t i) {
        return float_bits(clamped(uniform_value(word32(r, i), t.f), t), d);
      });
    case Dist::normal:
      if (d == Dtype::f64)
        return each(dst, n, width, [&](size_t i) {
          return std::bit_cast<uint64_t>(t.mean + t.std * normal_value(word64(r, i)));
        });
      return each(dst, n, width, [&](size_t i) {
        return float_bits(float(t.mean + t.std * normal_value(word64(r, i))), d);
      });
    case Dist::integers:
      if (words_per_element(t) == 1)
        return each(dst, n, width, [&](size_t i) {
          return t.first + ((uint64_t(word32(r, i)) * t.count) >> 32);
        });
      return each(dst, n, width, [&](size_t i) {
        const uint64_t x = word64(r, i);
        return t.first + (t.count == 0 ? x : mulhi64(x, t.count));
      });
    case Dist::zipf:
      return each(dst, n, width, [&](size_t i) {
        return t.first + zipf_rank(double(word64(r, i) >> 11) * 0x1p-53, t) - 1;
      });
  }
}

}  // namespace
}  // namespace dgen::kernels
