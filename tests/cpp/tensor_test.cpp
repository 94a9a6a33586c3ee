// Numeric data: values depend on (seed, element index) only.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "dgen/tensor.hpp"
#include "kernels/kernels.hpp"
#include "golden_rows.hpp"
#include "simd_available.hpp"
#include "kernels/typed.hpp"
#include "sha256.hpp"

namespace {

using dgen::kernels::Stores;
constexpr std::array kEveryStore{Stores::plain, Stores::paired, Stores::stream};

std::vector<float> uniform(uint64_t seed, uint64_t first, size_t n, float low = 0, float high = 1,
                           unsigned threads = 1) {
  std::vector<float> v(n);
  dgen::uniform_f32(seed, first, v, low, high, {threads, 0});
  return v;
}

bool same(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), 4 * a.size()) == 0;
}

TEST(Kernels, UniformMatchesTheScalarReference) {
  const auto tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  for (const dgen::kernels::Table* t : tables) {
    SCOPED_TRACE(t->name);
    const dgen::kernels::Table& simd = *t;
    std::mt19937_64 rng(11);
    constexpr size_t kMax = 4, kBlock = dgen::kernels::kUniformBlock;
    alignas(64) static float a[kBlock * kMax], b[kBlock * kMax + 16];
    for (int i = 0; i < 300; ++i) {
      const size_t count = 1 + rng() % kMax;
      uint64_t keys[kMax];
      for (auto& k : keys) k = rng();
      const float low = float(int(rng() % 200) - 100) / 8, high = low + float(1 + rng() % 1000) / 16;
      const dgen::kernels::UniformScale s{low, (high - low) * 0x1p-24f, high,
                                          std::nextafter(high, -1e30f)};
      // 64-, 32-, 16- and 4-byte aligned, each stored every way.
      const size_t shift = std::array<size_t, 4>{0, 8, 4, 1}[i % 4];
      dgen::kernels::scalar().uniform(a, keys, count, s, Stores::plain);
      std::memset(b, 0xA5, sizeof b);
      simd.uniform(b + shift, keys, count, s, kEveryStore[i / 4 % 3]);
      simd.fence();
      ASSERT_EQ(0, std::memcmp(a, b + shift, 4 * kBlock * count))
          << count << " blocks, [" << low << ", " << high << "), shift " << shift;
    }
  }
}

TEST(Uniform, ChunkingDoesNotChangeValues) {
  const size_t n = 50000;
  const std::vector<float> whole = uniform(3, 0, n);
  std::mt19937_64 rng(5);
  std::vector<float> pieces(n);
  for (size_t at = 0; at < n;) {
    const size_t len = std::min<size_t>(n - at, 1 + rng() % 3000);
    dgen::uniform_f32(3, at, {pieces.data() + at, len}, 0, 1, {1, 0});
    at += len;
  }
  EXPECT_TRUE(same(whole, pieces));
}

TEST(Uniform, ThreadCountDoesNotChangeValues) {
  const size_t n = (3 << 20) + 12345;  // several work blocks, a partial one at the end
  const std::vector<float> one = uniform(9, 7, n, -2, 3, 1);
  EXPECT_TRUE(same(one, uniform(9, 7, n, -2, 3, 2)));
  EXPECT_TRUE(same(one, uniform(9, 7, n, -2, 3, 3)));
}

TEST(Uniform, SeedsGiveDifferentValues) {
  EXPECT_FALSE(same(uniform(1, 0, 1024), uniform(2, 0, 1024)));
}

TEST(Uniform, ValuesLieInTheRangeAndNeverReachHigh) {
  // In [1, 2) the float spacing is 2^-23: the largest words round up to 2.
  const std::vector<float> v = uniform(4, 0, 1 << 20, 1, 2);
  float lo = 2, hi = 1;
  for (float x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  EXPECT_GE(lo, 1.0f);
  EXPECT_LT(hi, 2.0f);
  for (auto [l, h] :
       {std::pair{-3e38f, 4e37f}, std::pair{1e-30f, 2e-30f}, std::pair{-1.0f, 0.0f}}) {
    for (float x : uniform(6, 0, 20000, l, h)) {
      ASSERT_GE(x, l);
      ASSERT_LT(x, h);
    }
  }
}

TEST(Uniform, MeanAndVarianceMatchTheoryOver1e8Values) {
  constexpr uint64_t n = 100'000'000, chunk = 1 << 20;
  std::vector<float> v(chunk);
  double sum = 0, squares = 0;
  for (uint64_t at = 0; at < n; at += chunk) {
    const uint64_t len = std::min(chunk, n - at);
    dgen::uniform_f32(13, at, {v.data(), len}, -1, 3, {1, 0});
    for (uint64_t i = 0; i < len; ++i) sum += v[i], squares += double(v[i]) * v[i];
  }
  const double mean = sum / n, var = squares / n - mean * mean;
  EXPECT_NEAR(mean, 1.0, 1e-3);            // sigma of the mean: 1.2e-4
  EXPECT_NEAR(var / (16.0 / 12), 1, 1e-3);  // sigma of the variance: 9e-5 of it
}

TEST(Uniform, ARangeOfOneFloatGivesIt) {
  for (float x : uniform(1, 0, 3000, 5, std::nextafter(5.0f, 6.0f))) ASSERT_EQ(x, 5.0f);
}

TEST(Uniform, BadRangesAreRefused) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  for (auto [l, h] : {std::pair{1.0f, 1.0f}, std::pair{2.0f, 1.0f}, std::pair{nan, 1.0f},
                      std::pair{0.0f, inf}, std::pair{-3e38f, 3e38f}})
    EXPECT_THROW(uniform(1, 0, 4, l, h), std::invalid_argument) << l << " " << h;
}

TEST(Normalize, RowsGetUnitNorm) {
  std::vector<float> v = uniform(2, 0, 1000 * 37, -1, 1);
  dgen::normalize_rows(v, 37, {1, 0});
  for (size_t r = 0; r < 1000; ++r) {
    double s = 0;
    for (size_t j = 0; j < 37; ++j) s += double(v[37 * r + j]) * v[37 * r + j];
    ASSERT_NEAR(std::sqrt(s), 1.0, 1e-6) << "row " << r;
  }
}

TEST(Normalize, ZeroAndNonFiniteRowsAreLeftAsTheyAre) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  std::vector<float> v = {0, 0, 3, 4, inf, 1, nan, 2, 1e-30f, 0};
  dgen::normalize_rows(v, 2);
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_EQ(v[1], 0.0f);
  EXPECT_FLOAT_EQ(v[2], 0.6f);
  EXPECT_FLOAT_EQ(v[3], 0.8f);
  EXPECT_EQ(v[4], inf);
  EXPECT_EQ(v[5], 1.0f);
  EXPECT_TRUE(std::isnan(v[6]));
  EXPECT_EQ(v[7], 2.0f);
  EXPECT_EQ(v[8], 1.0f);  // the norm is taken in double: tiny rows do not underflow
}

TEST(Normalize, DimMustDivideTheValues) {
  std::vector<float> v(10);
  EXPECT_THROW(dgen::normalize_rows(v, 0), std::invalid_argument);
  EXPECT_THROW(dgen::normalize_rows(v, 3), std::invalid_argument);
}

TEST(Vectors, AreUniformValuesThenNormalizedRows) {
  const size_t rows = 20000, dim = 100;  // several work blocks
  std::vector<float> want = uniform(8, 0, rows * dim, 0, 1);
  dgen::normalize_rows(want, dim, {1, 0});
  for (unsigned threads : {1u, 2u}) {
    std::vector<float> got(rows * dim);
    dgen::uniform_vectors(8, got, dim, 0, 1, true, {threads, 0});
    EXPECT_TRUE(same(want, got)) << threads << " threads";
  }
  std::vector<float> plain(rows * dim);
  dgen::uniform_vectors(8, plain, dim, 0, 1, false, {2, 0});
  EXPECT_TRUE(same(uniform(8, 0, rows * dim), plain));
}

// tests/golden_uniform_v1.txt: "uniform seed first count low high sha256" and
// "vectors seed rows dim low high sha256" (normalized), of the little-endian float32 bytes.
TEST(Golden, UniformV1Vectors) {
  const int rows = golden_rows("golden_uniform_v1.txt",
                               [](std::istringstream& f, const std::string& line) {
    std::string kind, want;
    uint64_t seed, a, b;
    float low, high;
    ASSERT_TRUE(f >> kind >> seed >> a >> b >> low >> high >> want) << line;
    std::vector<float> v;
    if (kind == "uniform") {
      v = uniform(seed, a, b, low, high, 2);
    } else {
      ASSERT_EQ(kind, "vectors") << line;
      v.resize(a * b);
      dgen::uniform_vectors(seed, v, b, low, high, true, {2, 0});
    }
    EXPECT_EQ(sha256_hex(v.data(), 4 * v.size()), want)
        << "isa " << dgen::isa_name() << ": " << line;
  });
  EXPECT_GE(rows, 8);
}

// Typed tensors.

std::vector<uint8_t> typed(dgen::Dtype d, const dgen::TensorParams& p, uint64_t seed,
                           uint64_t first, size_t n, unsigned threads = 1) {
  std::vector<uint8_t> v(n * dgen::element_size(d));
  dgen::fill_tensor(seed, first, d, p, v, {threads, 0});
  return v;
}

dgen::TensorParams uniform_p(double low, double high) {
  return {.dist = dgen::Dist::uniform, .low = low, .high = high};
}
dgen::TensorParams normal_p(double mean, double std) {
  return {.dist = dgen::Dist::normal, .mean = mean, .std = std};
}
dgen::TensorParams integers_p(int64_t low, uint64_t count, double zipf = 0) {
  return {.dist = zipf > 0 ? dgen::Dist::zipf : dgen::Dist::integers, .first = uint64_t(low),
          .count = count, .exponent = zipf > 0 ? zipf : 1};
}

// One spec of every dtype and distribution, as the kernels take them.
std::vector<std::pair<dgen::Dtype, dgen::TensorParams>> every_kind() {
  using D = dgen::Dtype;
  std::vector<std::pair<D, dgen::TensorParams>> out;
  for (D d : {D::f16, D::bf16, D::f32, D::f64}) {
    out.push_back({d, uniform_p(-3, 5)});
    out.push_back({d, normal_p(1, 2)});
  }
  for (D d : {D::i8, D::i16, D::i32, D::i64, D::u8, D::u16, D::u32, D::u64}) {
    out.push_back({d, integers_p(0, 100)});
    out.push_back({d, integers_p(0, 120, 1.2)});
  }
  out.push_back({D::u64, integers_p(0, 0)});  // all 2^64 values
  out.push_back({D::u32, integers_p(0, 1ull << 32)});
  return out;
}

TEST(Kernels, TypedMatchesTheScalarReference) {
  const auto tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  for (const dgen::kernels::Table* t : tables) {
    SCOPED_TRACE(t->name);
    const dgen::kernels::Table& simd = *t;
    std::mt19937_64 rng(12);
    alignas(64) static uint8_t a[4 * 4096], b[4 * 4096];
    for (int i = 0; i < 600; ++i) {
      dgen::kernels::TypedSpec t{};
      t.dtype = dgen::Dtype(rng() % 12);
      const bool floating = dgen::is_float(t.dtype);
      t.dist = dgen::Dist(floating ? rng() % 2 : 2 + rng() % 2);
      // Scales that reach float16's subnormals and its overflow to infinity.
      const float low = std::array{-1.0f, -1e-4f, -7e4f}[rng() % 3];
      t.f = {low, -2 * low * 0x1p-24f, -low, std::nextafter(-low, 0.0f)};
      t.clamp_lo = t.dtype == dgen::Dtype::f32 ? low : 0.99f * low;
      t.clamp_hi = t.dtype == dgen::Dtype::f32 ? t.f.below_high : -0.99f * low;
      t.low = -1, t.step = 0x1p-51, t.high = 1, t.below_high = std::nextafter(1.0, 0.0);
      t.mean = 0.5, t.std = std::array{3.0, 1e-5, 5e4}[rng() % 3];
      t.first = rng() % 2 ? 0 : uint64_t(-7);
      t.count = t.dist == dgen::Dist::zipf ? 1 + rng() % 1000 : rng() % 2 ? 0 : 1 + rng() % 256;
      if (t.dist == dgen::Dist::integers && dgen::element_size(t.dtype) < 8 && t.count == 0)
        t.count = 1;
      t.log_form = rng() % 2;
      t.c0 = t.log_form ? 1.0 : -0.69;
      t.c1 = t.log_form ? -0.9 : 7.0;
      t.inv_t = -2.5;
      const size_t count = 1 + rng() % 4;
      uint64_t keys[4];
      for (auto& k : keys) k = rng();
      const size_t bytes = count * dgen::kernels::block_elements(t) * dgen::element_size(t.dtype);
      std::memset(a, 0x5A, sizeof a);
      std::memset(b, 0xA5, sizeof b);
      dgen::kernels::scalar().typed(a, keys, count, t, Stores::plain);
      simd.typed(b, keys, count, t, kEveryStore[i % 3]);
      ASSERT_EQ(0, std::memcmp(a, b, bytes))
          << dgen::dtype_name(t.dtype) << " dist " << int(t.dist) << ", " << count << " blocks";
    }
  }
}

TEST(Typed, ChunkingAndThreadsDoNotChangeElements) {
  std::mt19937_64 rng(6);
  for (const auto& [d, p] : every_kind()) {
    const size_t n = 300000 + rng() % 5000, w = dgen::element_size(d);  // several work blocks
    const std::vector<uint8_t> whole = typed(d, p, 4, 9, n);
    EXPECT_EQ(whole, typed(d, p, 4, 9, n, 2)) << dgen::dtype_name(d);
    EXPECT_EQ(whole, typed(d, p, 4, 9, n, 3)) << dgen::dtype_name(d);
    std::vector<uint8_t> pieces(n * w);
    for (size_t at = 0; at < n;) {
      const size_t len = std::min<size_t>(n - at, 1 + rng() % 3000);
      dgen::fill_tensor(4, 9 + at, d, p, {pieces.data() + at * w, len * w}, {1, 0});
      at += len;
    }
    EXPECT_EQ(whole, pieces) << dgen::dtype_name(d);
  }
}

TEST(Typed, Float32UniformIsTheUniformStream) {
  const std::vector<float> want = uniform(5, 100, 5000, -1, 2);
  const std::vector<uint8_t> got = typed(dgen::Dtype::f32, uniform_p(-1, 2), 5, 100, 5000);
  EXPECT_EQ(0, std::memcmp(want.data(), got.data(), got.size()));
}

TEST(Typed, NarrowFloatsAreTheFloat32ValuesRoundedAndStayInRange) {
  const std::vector<float> f = uniform(5, 0, 100000, -1, 2);
  for (dgen::Dtype d : {dgen::Dtype::f16, dgen::Dtype::bf16}) {
    const std::vector<uint8_t> got = typed(d, uniform_p(-1, 2), 5, 0, f.size());
    for (size_t i = 0; i < f.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, got.data() + 2 * i, 2);
      const uint16_t want = d == dgen::Dtype::f16 ? dgen::kernels::half_bits(f[i])
                                                  : dgen::kernels::bfloat_bits(f[i]);
      // Rounding may reach high: those become the largest value below it.
      ASSERT_EQ(h, want == 0x4000 ? 0x3FFF : want) << i;
    }
  }
}

TEST(Typed, HalfConversionRoundsToNearestEven) {
  using dgen::kernels::half_bits;
  EXPECT_EQ(half_bits(1.0f), 0x3C00);
  EXPECT_EQ(half_bits(-2.0f), 0xC000);
  EXPECT_EQ(half_bits(65504.0f), 0x7BFF);
  EXPECT_EQ(half_bits(65520.0f), 0x7C00);
  EXPECT_EQ(half_bits(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(half_bits(std::ldexp(1.0f, -25)), 0x0000);  // a tie: to even
  EXPECT_EQ(half_bits(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie, to even
  EXPECT_EQ(half_bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie, to even
  EXPECT_EQ(dgen::kernels::bfloat_bits(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
}

TEST(Typed, SeriesMatchStdCmath) {
  for (double x : {1e-300, 2.3283064365386963e-10, 0.1, 0.5, 0.7071, 1.0, 3.0, 1e10})
    EXPECT_NEAR(dgen::kernels::log_d(x), std::log(x), 4e-16 * std::max(1.0, std::abs(std::log(x))));
  for (double z : {-0.7, 0.0, 0.3, 1.0, 10.0, 44.0})
    EXPECT_NEAR(dgen::kernels::exp_d(z) / std::exp(z), 1.0, 1e-15);
  for (uint32_t w : {0u, 1u << 29, 1u << 30, 3u << 30, 0x9E3779B9u, 0xFFFFFFFFu})
    EXPECT_NEAR(dgen::kernels::cos_turn(w), std::cos(2 * M_PI * (w + 0.5) / 0x1p32), 1e-15);
}

TEST(Typed, NormalMomentsMatch) {
  const size_t n = 2'000'000;
  const std::vector<uint8_t> v = typed(dgen::Dtype::f64, normal_p(3, 2), 7, 0, n, 2);
  const double* x = reinterpret_cast<const double*>(v.data());
  double s = 0, s2 = 0, s4 = 0;
  for (size_t i = 0; i < n; ++i) {
    const double z = (x[i] - 3) / 2;
    s += z, s2 += z * z, s4 += z * z * z * z;
  }
  EXPECT_NEAR(s / n, 0, 5 * std::sqrt(1.0 / n));
  EXPECT_NEAR(s2 / n, 1, 5 * std::sqrt(2.0 / n));
  EXPECT_NEAR(s4 / n, 3, 5 * std::sqrt(96.0 / n));  // a normal's kurtosis
}

TEST(Typed, IntegersStayInTheirRange) {
  for (const auto& [d, p] : every_kind()) {
    if (dgen::is_float(d) || p.count == 0) continue;
    const size_t w = dgen::element_size(d), n = 50000;
    const std::vector<uint8_t> v = typed(d, p, 3, 0, n);
    for (size_t i = 0; i < n; ++i) {
      uint64_t x = 0;
      std::memcpy(&x, v.data() + w * i, w);
      ASSERT_LT(x - p.first, p.count) << dgen::dtype_name(d);  // unsigned: also x >= first
    }
  }
}

TEST(Typed, BadParametersAreRefused) {
  using D = dgen::Dtype;
  std::vector<uint8_t> v(64);
  auto fill = [&](D d, dgen::TensorParams p) { dgen::fill_tensor(1, 0, d, p, v); };
  EXPECT_THROW(fill(D::f32, integers_p(0, 10)), std::invalid_argument);
  EXPECT_THROW(fill(D::i32, uniform_p(0, 1)), std::invalid_argument);
  EXPECT_THROW(fill(D::f64, uniform_p(1, 1)), std::invalid_argument);
  EXPECT_THROW(fill(D::f16, uniform_p(1.0001, 1.0002)), std::invalid_argument);  // no half inside
  EXPECT_THROW(fill(D::f32, normal_p(0, -1)), std::invalid_argument);
  EXPECT_THROW(fill(D::i8, integers_p(-129, 2)), std::invalid_argument);
  EXPECT_THROW(fill(D::u8, integers_p(200, 57)), std::invalid_argument);
  EXPECT_THROW(fill(D::i16, integers_p(0, 0)), std::invalid_argument);
  EXPECT_THROW(fill(D::i32, integers_p(0, 0, 1.0)), std::invalid_argument);
  EXPECT_THROW(fill(D::i32, integers_p(0, 10, 101)), std::invalid_argument);
  EXPECT_NO_THROW(fill(D::u8, integers_p(200, 56)));
  EXPECT_NO_THROW(fill(D::i64, integers_p(INT64_MIN, 0)));
  // Messages show the values given: an unsigned first as unsigned, small floats as such.
  try {
    fill(D::u32, integers_p(int64_t((1ull << 63) + 5), 2));
    ADD_FAILURE() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("first=9223372036854775813"), std::string::npos) << e.what();
  }
  try {
    fill(D::f16, uniform_p(1e-10, 2e-10));
    ADD_FAILURE() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("low=1e-10, high=2e-10"), std::string::npos) << e.what();
  }
  std::vector<uint8_t> odd(7);
  EXPECT_THROW(dgen::fill_tensor(1, 0, D::i16, integers_p(0, 5), odd), std::invalid_argument);
  EXPECT_THROW(dgen::parse_dtype("float8"), std::invalid_argument);
  EXPECT_EQ(dgen::parse_dtype("bfloat16"), D::bf16);
}

__int128 parse_int(const std::string& s) {
  __int128 v = 0;
  for (char c : s.substr(s[0] == '-')) v = v * 10 + (c - '0');
  return s[0] == '-' ? -v : v;
}

// tests/golden_tensor_v1.txt: "dtype dist seed start count a b c sha256".
TEST(Golden, TensorV1Vectors) {
  const int rows = golden_rows("golden_tensor_v1.txt",
                               [](std::istringstream& f, const std::string& line) {
    std::string dtype, dist, a, b, c, want;
    uint64_t seed, start, count;
    ASSERT_TRUE(f >> dtype >> dist >> seed >> start >> count >> a >> b >> c >> want) << line;
    dgen::TensorParams p;
    if (dist == "uniform") {
      p = uniform_p(std::stod(a), std::stod(b));
    } else if (dist == "normal") {
      p = normal_p(std::stod(a), std::stod(b));
    } else {
      const __int128 lo = parse_int(a), hi = parse_int(b);
      p = integers_p(int64_t(uint64_t(lo)), uint64_t(hi - lo), dist == "zipf" ? std::stod(c) : 0);
    }
    const std::vector<uint8_t> v = typed(dgen::parse_dtype(dtype), p, seed, start, count, 2);
    EXPECT_EQ(sha256_hex(v.data(), v.size()), want) << "isa " << dgen::isa_name() << ": " << line;
  });
  EXPECT_EQ(rows, 48);
}

}  // namespace
