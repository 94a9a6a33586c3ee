// Numeric data: values depend on (seed, element index) only.
#include <gtest/gtest.h>

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
#include "sha256.hpp"

namespace {

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
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (!dgen::kernels::avx2() || !__builtin_cpu_supports("avx2")) GTEST_SKIP() << "no AVX2";
#else
  GTEST_SKIP() << "no SIMD path";
#endif
  const dgen::kernels::Table& simd = *dgen::kernels::avx2();
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
    const size_t shift = i % 3 == 0 ? 0 : i % 3 == 1 ? 4 : 1;  // 32-, 16- and 4-byte aligned
    dgen::kernels::scalar().uniform(a, keys, count, s, false);
    std::memset(b, 0xA5, sizeof b);
    simd.uniform(b + shift, keys, count, s, i % 2 == 0);
    simd.fence();
    ASSERT_EQ(0, std::memcmp(a, b + shift, 4 * kBlock * count))
        << count << " blocks, [" << low << ", " << high << "), shift " << shift;
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
  const std::string path = std::string(DGEN_GOLDEN_DIR) + "/golden_uniform_v1.txt";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot open " << path;
  int rows = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream f(line);
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
    ++rows;
  }
  EXPECT_GE(rows, 8);
}

}  // namespace
