// Dedup mapping and validation of the dataset identity.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>
#include <vector>

#include "dgen/dgen.hpp"
#include "model.hpp"

namespace {

dgen::Dataset dataset(uint64_t size, double dedup, uint64_t unit = 131072, uint64_t seed = 1) {
  return dgen::Dataset(dgen::Params{seed, size, dedup, 1.0, unit});
}

TEST(Model, PermuteIsABijection) {
  for (uint64_t n : {1, 2, 3, 5, 17, 64, 1000, 4097}) {
    std::vector<bool> seen(n);
    for (uint64_t x = 0; x < n; ++x) {
      const uint64_t y = dgen::model::permute(x, n, 0xABCDEF + n);
      ASSERT_LT(y, n);
      ASSERT_FALSE(seen[y]);
      seen[y] = true;
    }
  }
}

TEST(Model, DistinctUnitsFollowTheFormula) {
  for (uint64_t units : {1, 2, 3, 7, 10, 77, 100, 999, 1000, 4321})
    for (double ratio : {1.0, 1.5, 2.0, 2.7, 3.7, 10.0, 50.0, 1000.0, 1e6}) {
      const auto ds = dataset(units * 4096 - 1, ratio, 4096);
      const uint64_t want = std::max<uint64_t>(1, uint64_t(std::nearbyint(units / ratio)));
      ASSERT_EQ(ds.unit_count(), units);
      ASSERT_EQ(ds.unique_count(), want);
      std::set<uint64_t> ids;
      for (uint64_t i = 0; i < units; ++i) ids.insert(ds.unique_id(i));
      ASSERT_EQ(ids.size(), want) << units << " units, ratio " << ratio;
      ASSERT_LT(*ids.rbegin(), want);
    }
}

TEST(Model, RoundsHalfToEven) {
  EXPECT_EQ(dgen::model::round_half_even(38.5), 38u);
  EXPECT_EQ(dgen::model::round_half_even(39.5), 40u);
  EXPECT_EQ(dgen::model::round_half_even(0.4999), 0u);
  EXPECT_EQ(dgen::model::round_half_even(2.5000001), 3u);
}

TEST(Model, DuplicatesAreNotPeriodic) {
  const auto ds = dataset(4096ull * 1000, 4, 4096);
  // Unit i and unit i + unique_count show different ids for most i.
  int same = 0;
  for (uint64_t i = 0; i + ds.unique_count() < ds.unit_count(); ++i)
    same += ds.unique_id(i) == ds.unique_id(i + ds.unique_count());
  EXPECT_LT(same, 20);
}

TEST(Model, RandomShareFallsWithTheRatio) {
  EXPECT_EQ(dgen::model::random_len_for(1.0), 4096u);
  uint32_t last = 4097;
  for (double r = 1.0; r <= 64; r *= 1.1) {
    const uint32_t n = dgen::model::random_len_for(r);
    EXPECT_LE(n, last);
    EXPECT_GE(n, 16u);
    last = n;
  }
}

struct Bad {
  dgen::Params p;
  const char* needle;
};

TEST(Model, InvalidIdentitiesNameTheParameter) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (const Bad& b : std::vector<Bad>{
           {{0, 1ull << 63, 1, 1, 131072}, "size"},
           {{0, 10, 0.5, 1, 131072}, "dedup_ratio"},
           {{0, 10, nan, 1, 131072}, "dedup_ratio"},
           {{0, 10, 1, inf, 131072}, "compress_ratio"},
           {{0, 10, 1, 0.99, 131072}, "compress_ratio"},
           {{0, 10, 1, 128.5, 131072}, "compress_ratio"},
           {{0, 10, 1e7, 1, 131072}, "dedup_ratio"},
           {{0, 10, 1, 1, 4095}, "dedup_unit"},
           {{0, 10, 1, 1, 3 * 4096}, "dedup_unit"},
           {{0, 10, 1, 1, 128ull << 20}, "dedup_unit"}}) {
    try {
      dgen::Dataset ds(b.p);
      FAIL() << "accepted " << b.needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(b.needle), std::string::npos) << e.what();
    }
  }
}

}  // namespace
