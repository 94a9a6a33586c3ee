// Dedup mapping and validation of the dataset identity.
#include <random>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <vector>

#include "dgen/dgen.hpp"
#include "datasets.hpp"
#include "model.hpp"

namespace {

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

TEST(Model, DistinctUnitsFollowTheFormulaInFormat1) {
  for (uint64_t units : {1, 2, 3, 7, 10, 77, 100, 999, 1000, 4321})
    for (double ratio : {1.0, 1.5, 2.0, 2.7, 3.7, 10.0, 50.0, 1000.0, 1e6}) {
      auto p = dataset(units * 4096 - 1, ratio, 4096).params();
      p.format_version = 1;
      const dgen::Dataset ds(p);
      const uint64_t want = std::max<uint64_t>(1, uint64_t(std::nearbyint(units / ratio)));
      ASSERT_EQ(ds.unit_count(), units);
      ASSERT_EQ(ds.unique_count(), want);
      std::set<uint64_t> ids;
      for (uint64_t i = 0; i < units; ++i) ids.insert(ds.unique_id(i));
      ASSERT_EQ(ids.size(), want) << units << " units, ratio " << ratio;
      ASSERT_LT(*ids.rbegin(), want);
    }
}

TEST(Model, Shuffle8IsABijectionAndReachesEveryOrder) {
  std::set<std::vector<uint64_t>> orders;
  for (uint64_t key = 0; key < 200000; ++key) {
    std::vector<uint64_t> order(8);
    std::vector<bool> seen(8);
    uint8_t where[8];
    dgen::model::shuffle8(key, where);
    for (uint64_t x = 0; x < 8; ++x) {
      order[x] = where[x];
      ASSERT_FALSE(seen[order[x]]);
      seen[order[x]] = true;
    }
    orders.insert(order);
  }
  EXPECT_GT(orders.size(), 39000u);  // of 8! = 40320
}

TEST(Model, UnpermuteInvertsPermute) {
  for (uint64_t n : {1, 2, 3, 5, 17, 64, 1000, 4097})
    for (uint64_t x = 0; x < n; ++x)
      ASSERT_EQ(dgen::model::unpermute(dgen::model::permute(x, n, 99 + n), n, 99 + n), x);
}

TEST(Model, SmallPermutationIsPermuteAndUnpermute) {
  for (uint64_t n = 1; n <= 256; ++n)
    for (uint64_t key : {0ull, 7ull, 0x9E3779B97F4A7C15ull, ~0ull}) {
      const dgen::model::SmallPermutation table(n, key);
      uint8_t forward[256], inverse[256];
      for (uint64_t y = 0; y < n; ++y) forward[y] = inverse[y] = uint8_t(y);
      table.apply<true>(forward, n);
      table.apply<false>(inverse, n);
      for (uint64_t y = 0; y < n; ++y) {
        ASSERT_EQ(forward[y], dgen::model::permute(y, n, key)) << "n " << n << " y " << y;
        ASSERT_EQ(inverse[y], dgen::model::unpermute(y, n, key)) << "n " << n << " y " << y;
      }
    }
  EXPECT_THROW(dgen::model::SmallPermutation(257, 1), std::invalid_argument);
}

TEST(Model, PermuteManyIsPermuteWithEachValuesKey) {
  std::mt19937_64 rng(5);
  for (uint64_t n : {1ull, 2ull, 3ull, 17ull, 64ull, 1000ull, (1ull << 20) + 3}) {
    for (size_t count : {0, 1, 7, 64, 65, 200}) {
      std::vector<uint64_t> keys(count), x(count), forward, inverse;
      for (size_t i = 0; i < count; ++i) keys[i] = rng(), x[i] = rng() % n;
      forward = inverse = x;
      dgen::model::permute_many<true>(n, keys.data(), forward.data(), count);
      dgen::model::permute_many<false>(n, keys.data(), inverse.data(), count);
      for (size_t i = 0; i < count; ++i) {
        ASSERT_EQ(forward[i], dgen::model::permute(x[i], n, keys[i])) << n << " " << i;
        ASSERT_EQ(inverse[i], dgen::model::unpermute(x[i], n, keys[i])) << n << " " << i;
      }
    }
  }
}

TEST(ModelV2, UniqueBeforeIsTheRoundedQuotient) {
  // The reciprocal shortcut must give floor(n / r + 1/2) exactly, ties and huge n included.
  std::mt19937_64 rng(11);
  for (double r : {1.5, 2.0, 3.0, 3.7, 4.0, 10.0, 1.0 + 1e-9, 7.3333333333, 1000.0}) {
    dgen::Params p;
    p.size = dgen::kMaxSize;
    p.dedup_ratio = r;
    const dgen::Dataset ds(p);
    for (int i = 0; i < 200000; ++i) {
      const uint64_t n = i < 100000 ? uint64_t(i) + 1 : 1 + rng() % (ds.unit_count() - 1);
      const auto want = std::max<uint64_t>(1, uint64_t(std::floor(double(n) / r + 0.5)));
      ASSERT_EQ(ds.unique_before(n), std::min(want, n)) << "r " << r << " n " << n;
    }
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
           {{0, 10, 1, 1, 128ull << 20}, "dedup_unit"},
           {{0, 10, 1, 1, 131072, 0}, "format_version"},
           {{0, 10, 1, 1, 131072, dgen::kMaxFormatVersion + 1}, "format_version"}}) {
    try {
      dgen::Dataset ds(b.p);
      FAIL() << "accepted " << b.needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(b.needle), std::string::npos) << e.what();
    }
  }
}

// --- format 2 -----------------------------------------------------------------------------

TEST(ModelV2, UniqueCountAtEveryWindowEndIsTheRatioRounded) {
  for (double r : {1.0, 1.5, 2.0, 2.7, 3.7, 10.0, 50.0, 1e6}) {
    const auto ds = v2(64 * 200, r);
    std::set<uint64_t> ids;
    for (uint64_t i = 0; i < ds.unit_count(); ++i) {
      ids.insert(ds.unique_id(i));
      const uint64_t n = i + 1;
      if (n % dgen::kWindowUnits) continue;
      ASSERT_EQ(ids.size(), std::max<uint64_t>(1, uint64_t(std::floor(double(n) / r + 0.5))))
          << "ratio " << r << " after " << n << " units";
      ASSERT_EQ(*ids.rbegin() + 1, ids.size());  // ids are 0, 1, 2, ... as they are born
    }
  }
}

TEST(ModelV2, UniqueCountIsExactForEverySize) {
  for (double r : {1.5, 2.0, 3.7, 10.0})
    for (uint64_t units : {1, 2, 5, 63, 64, 65, 100, 1000, 4321}) {
      const auto ds = v2(units, r, 9);
      std::set<uint64_t> ids;
      for (uint64_t i = 0; i < units; ++i) ids.insert(ds.unique_id(i));
      ASSERT_EQ(ds.unique_count(), ids.size()) << units << " units, ratio " << r;
    }
}

TEST(ModelV2, EveryIdHasTheRatiosCopiesWithinOne) {
  for (double r : {1.5, 2.0, 2.7, 3.7, 10.0}) {
    const auto ds = v2(64 * 100, r);
    std::vector<uint64_t> copies(ds.unique_count());
    for (uint64_t i = 0; i < ds.unit_count(); ++i) ++copies[ds.unique_id(i)];
    copies.pop_back();  // the last id may go on past the end
    // The first id also shows in the slots before the count reaches round(1 / r) = 1.
    EXPECT_LE(double(copies[0]), std::ceil(r) + std::ceil(r / 2));
    copies.erase(copies.begin());
    for (uint64_t c : copies) {
      ASSERT_GE(double(c), std::floor(r)) << r;
      ASSERT_LE(double(c), std::ceil(r)) << r;
    }
  }
}

TEST(ModelV2, BytesAtAnOffsetDoNotDependOnTheSize) {
  const auto big = v2(64 * 50, 3.7, 4);
  for (uint64_t units : {1, 33, 64, 65, 1000}) {
    const auto small = v2(units, 3.7, 4);
    for (uint64_t i = 0; i < units; ++i) ASSERT_EQ(small.unique_id(i), big.unique_id(i));
  }
}

TEST(ModelV2, CopiesAreMixedWithFirstOccurrencesInEveryWindow) {
  // No phases: the first half of a window of a dedup-2 dataset holds copies too (about 7 of
  // its 32 units on average; none only where the keyed rows happen to alternate).
  const auto ds = v2(64 * 200, 2.0);
  std::set<uint64_t> seen;
  int total = 0, without = 0;
  for (uint64_t w = 0; w < 200; ++w) {
    int copies = 0;
    for (uint64_t j = 0; j < 64; ++j) {
      const bool copy = !seen.insert(ds.unique_id(w * 64 + j)).second;
      copies += copy && j < 32;
    }
    total += copies;
    without += copies == 0;
  }
  EXPECT_GT(total, 200 * 5);
  EXPECT_LT(without, 200 / 10);
}

TEST(ModelV2, CopiesOfAnIdLieApartAtLowRatios) {
  // Up to dedup 8 the copies of one id are 8 or more units apart (no two in a 1 MiB
  // compressor frame of 128 KiB units) unless the id straddles a grid column.
  const auto ds = v2(64 * 100, 2.0);
  std::vector<int64_t> last(ds.unique_count(), -1000);
  int close = 0;
  for (uint64_t i = 0; i < ds.unit_count(); ++i) {
    const uint64_t id = ds.unique_id(i);
    close += int64_t(i) - last[id] < 8;
    last[id] = int64_t(i);
  }
  EXPECT_LT(close, int(ds.unique_count() / 20));
}

// SHA-256 over aligned 4 KiB blocks of a range, through the model: (id, page) pairs.
double block_ratio(const dgen::Dataset& ds, uint64_t offset, uint64_t len) {
  const uint64_t unit = ds.params().dedup_unit, pages = unit / 4096;
  std::vector<std::pair<uint64_t, uint64_t>> blocks;
  uint64_t at_unit = ~0ull, id = 0;
  for (uint64_t b = offset / 4096; b < (offset + len) / 4096; ++b) {
    if (b / pages != at_unit) id = ds.unique_id(at_unit = b / pages);
    blocks.push_back({id, b % pages});
  }
  std::sort(blocks.begin(), blocks.end());
  const auto distinct = std::unique(blocks.begin(), blocks.end()) - blocks.begin();
  return double(blocks.size()) / double(distinct);
}

TEST(ModelV2, Any512MiBShowsTheRatioWithin3Percent) {
  for (double r : {1.5, 2.0, 3.7, 10.0}) {
    const dgen::Dataset ds(dgen::Params{11, 64ull << 30, r, 1.0, 131072, 2});
    uint64_t x = 12345;
    for (int trial = 0; trial < 12; ++trial) {
      x = dgen::model::mix64(x);
      const uint64_t off = (x % ((64ull << 30) - (512ull << 20))) & ~4095ull;
      EXPECT_NEAR(block_ratio(ds, off, 512ull << 20), r, 0.03 * r) << "offset " << off;
    }
    for (int trial = 0; trial < 3; ++trial) {  // 2 GiB anywhere, not only at window ends
      x = dgen::model::mix64(x);
      const uint64_t off = (x % ((64ull << 30) - (2ull << 30))) & ~4095ull;
      EXPECT_NEAR(block_ratio(ds, off, 2ull << 30), r, 0.02 * r) << "offset " << off;
    }
    // The whole dataset: every page of a unit is distinct, so units over unique units.
    EXPECT_NEAR(double(ds.unit_count()) / double(ds.unique_count()), r, 0.01 * r);
  }
}

TEST(ModelV2, RelatedSeedsGiveUnrelatedUnits) {
  // Format 1 keyed unit content by seed + golden * (id + 1): seeds a multiple of the
  // golden ratio apart gave the same units shifted. Format 2 mixes the seed first.
  const uint64_t golden = 0x9E3779B97F4A7C15ull;
  const dgen::Dataset a(dgen::Params{7, 1 << 20, 1, 1, 4096, 2});
  std::set<uint64_t> keys;
  for (uint64_t id = 0; id < 256; ++id) keys.insert(a.unit_key(id));
  for (uint64_t k = 1; k <= 8; ++k) {
    const dgen::Dataset b(dgen::Params{7 + k * golden, 1 << 20, 1, 1, 4096, 2});
    for (uint64_t id = 0; id < 256; ++id) ASSERT_FALSE(keys.count(b.unit_key(id))) << k;
  }
  const dgen::Dataset v1a(dgen::Params{7, 1 << 20, 1, 1, 4096, 1});
  const dgen::Dataset v1b(dgen::Params{7 + golden, 1 << 20, 1, 1, 4096, 1});
  EXPECT_EQ(v1a.unit_key(1), v1b.unit_key(0));  // the defect, kept in format 1
}

TEST(ModelV2, RunsRepeatConsecutiveUniqueUnits) {
  const auto ds = runs(64 * 16 * 10, 2.0, 16);
  for (uint64_t q = 0; q < ds.unit_count() / 16; ++q) {
    const uint64_t first = ds.unique_id(q * 16);
    ASSERT_EQ(first % 16, 0u);
    for (uint64_t t = 1; t < 16; ++t) ASSERT_EQ(ds.unique_id(q * 16 + t), first + t);
  }
}

TEST(ModelV2, RunsKeepTheRatioAndTheCountExact) {
  for (uint64_t run : {1, 2, 16, 100})
    for (double r : {1.5, 2.0, 3.7})
      for (uint64_t units : std::vector<uint64_t>{1, 17, 64 * run, 64 * run * 3, 64 * run * 3 + 5}) {
        const auto ds = runs(units, r, run, 3);
        std::set<uint64_t> ids;
        for (uint64_t i = 0; i < units; ++i) ids.insert(ds.unique_id(i));
        ASSERT_EQ(ds.unique_count(), ids.size()) << units << " units, run " << run << ", r " << r;
        if (units % (64 * run) == 0)
          ASSERT_EQ(ids.size(), run * uint64_t(std::floor(double(units / run) / r + 0.5)));
      }
}

TEST(ModelV2, RunsAreRefusedOutOfRangeAndInFormat1) {
  dgen::Params p{1, 1 << 20, 2, 1, 4096, 2};
  for (uint64_t bad : std::vector<uint64_t>{0, dgen::kMaxDedupRun + 1}) {
    p.dedup_run = bad;
    EXPECT_THROW(dgen::Dataset{p}, std::invalid_argument);
  }
  p.dedup_run = 4;
  p.format_version = 1;
  EXPECT_THROW(dgen::Dataset{p}, std::invalid_argument);
}

TEST(ModelV2, SkewKeepsTheCountExactAndMakesHotUnits) {
  for (double skew : {0.5, 1.0, 2.0})
    for (double r : {1.2, 2.0, 10.0})
      for (uint64_t units : std::vector<uint64_t>{7, 64, 64 * 30, 64 * 30 + 9}) {
        dgen::Params p{2, units * 4096, r, 1.0, 4096, 2};
        p.dedup_skew = skew;
        const dgen::Dataset ds(p);
        std::map<uint64_t, uint64_t> copies;
        for (uint64_t i = 0; i < units; ++i) ++copies[ds.unique_id(i)];
        ASSERT_EQ(ds.unique_count(), copies.size()) << skew << " " << r << " " << units;
        if (units % 64 == 0)
          ASSERT_EQ(copies.size(), std::max<uint64_t>(1, uint64_t(std::floor(double(units) / r + 0.5))));
        if (units == 64 * 30 && r == 2.0 && skew >= 1) EXPECT_GT(copies[0], 50u);  // the hottest
      }
  dgen::Params p{2, 1 << 20, 2, 1, 4096, 2};
  p.dedup_skew = -1;
  EXPECT_THROW(dgen::Dataset{p}, std::invalid_argument);
  p.dedup_skew = 1;
  p.format_version = 1;
  EXPECT_THROW(dgen::Dataset{p}, std::invalid_argument);
}

// --- format 3 -----------------------------------------------------------------------------

TEST(ModelV3, DistinctRunsAtEveryWholeWindowAreTheBirthsSoFar) {
  // Slot s shows id floor(s / r): n runs hold floor((n - 1) / r) + 1 ids, n / r where that
  // is whole.
  for (uint64_t window : {1, 4, 16, 64})
    for (uint64_t run : {1, 3})
      for (double r : {1.0, 1.5, 2.0, 2.7, 3.7, 4.0, 10.0, 50.0}) {
        const auto ds = v3(window * run * 150, r, window, run);
        std::set<uint64_t> ids;
        for (uint64_t i = 0; i < ds.unit_count(); ++i) {
          ids.insert(ds.unique_id(i));
          const uint64_t n = (i + 1) / run;  // runs so far
          if ((i + 1) % run || n % window) continue;
          ASSERT_EQ(ids.size(), run * (uint64_t(std::floor(double(n - 1) / r)) + 1))
              << "window " << window << " run " << run << " ratio " << r << " after " << n;
        }
      }
}

TEST(ModelV3, IdsOfAnIntegerRatioFillWholeMultiplesOfIt) {
  // So a range of whole windows, a file of 8 runs at dedup 4 say, cuts no id in two.
  for (double r : {2.0, 3.0, 4.0, 8.0}) {
    const auto ds = v3(1000, r, 1);
    for (uint64_t i = 0; i < ds.unit_count(); ++i)
      ASSERT_EQ(ds.unique_id(i), uint64_t(double(i) / r)) << r << " " << i;
  }
}

TEST(ModelV3, UniqueCountIsExactForEverySize) {
  for (uint64_t window : {1, 4, 16})
    for (double r : {1.5, 2.0, 3.7})
      for (uint64_t units : {1, 2, 5, 15, 16, 17, 100, 1001}) {
        const auto ds = v3(units, r, window, 2, 9);
        std::set<uint64_t> ids;
        for (uint64_t i = 0; i < units; ++i) ids.insert(ds.unique_id(i));
        ASSERT_EQ(ds.unique_count(), ids.size()) << units << " units, ratio " << r;
      }
}

TEST(ModelV3, BytesAtAnOffsetDoNotDependOnTheSize) {
  for (uint64_t window : {1, 4, 16}) {
    const auto big = v3(64 * 50, 3.7, window, 2, 4);
    for (uint64_t units : {1, 33, 64, 65, 1000}) {
      const auto small = v3(units, 3.7, window, 2, 4);
      for (uint64_t i = 0; i < units; ++i) ASSERT_EQ(small.unique_id(i), big.unique_id(i));
      std::vector<uint8_t> a(units * 4096), b(units * 4096);
      dgen::fill(small, 0, a);
      dgen::fill(big, 0, b);
      ASSERT_EQ(a, b) << "window " << window << " units " << units;
    }
  }
}

TEST(ModelV3, WindowOf64AtDedup2IsFormat2sLayout) {
  // (Other ratios differ: format 3 rounds births up, format 2 to nearest.)
  for (double r : {1.0, 2.0}) {
    const auto a = v2(64 * 20, r, 5);
    const auto b = v3(64 * 20, r, 64, 1, 5);
    for (uint64_t i = 0; i < a.unit_count(); ++i) ASSERT_EQ(a.unique_id(i), b.unique_id(i));
  }
}

TEST(ModelV3, CopiesOfAnIdLieASideApartAtDedup2) {
  // In a grid of n runs a side, the copies of an id lie n or more runs apart unless the
  // id straddles a grid column (at dedup 2 none does).
  for (uint64_t window : {4, 16, 64})
    for (double r : {2.0}) {
      const uint64_t side = window == 4 ? 2 : window == 16 ? 4 : 8;
      const auto ds = v3(window * 200, r, window);
      std::vector<int64_t> last(ds.unique_count(), -1000);
      int close = 0;
      for (uint64_t i = 0; i < ds.unit_count(); ++i) {
        const uint64_t id = ds.unique_id(i);
        close += int64_t(i) - last[id] < int64_t(side);
        last[id] = int64_t(i);
      }
      EXPECT_LT(close, int(ds.unique_count() / 10)) << window << " " << r;
    }
}

TEST(ModelV3, SkewKeepsTheCountExactInWindowsWithCopiesToSpare) {
  for (uint64_t window : {16, 64}) {
    dgen::Params p{2, 16 * 40 * 4096, 2.0, 1.0, 4096, 3};
    p.dedup_window = window, p.dedup_skew = 1.0;
    const dgen::Dataset ds(p);
    std::set<uint64_t> ids;
    for (uint64_t i = 0; i < ds.unit_count(); ++i) ids.insert(ds.unique_id(i));
    EXPECT_EQ(ids.size(), ds.unique_count());
    if (ds.unit_count() % window == 0) EXPECT_EQ(ids.size(), ds.unit_count() / 2);
  }
  dgen::Params p{2, 1 << 20, 2.0, 1.0, 4096, 3};
  p.dedup_window = 1, p.dedup_skew = 1.0;
  EXPECT_THROW(dgen::Dataset{p}, std::invalid_argument);
}

TEST(ModelV3, WindowIsRefusedOutOfItsValuesAndBeforeFormat3) {
  for (uint64_t w : {0, 2, 8, 32, 128}) {
    dgen::Params p{0, 10, 1, 1, 131072, 3};
    p.dedup_window = w;
    EXPECT_THROW(dgen::Dataset{p}, std::invalid_argument) << w;
  }
  for (int v : {1, 2}) {
    dgen::Params p{0, 10, 1, 1, 131072, v};
    p.dedup_window = 16;
    try {
      dgen::Dataset ds(p);
      FAIL() << "accepted window 16 in format " << v;
    } catch (const std::invalid_argument& e) {  // names the formats that take one
      EXPECT_EQ(std::string(e.what()), "dedup_window must be 64 in format_version " +
                                           std::to_string(v) +
                                           " (formats 3 to 5 set it), got 16");
    }
  }
}

}  // namespace
