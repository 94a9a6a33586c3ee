// Generations: which runs each rewrite changes, and versions through the cache or one by one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

#include "dgen/dgen.hpp"
#include "dataset_detail.hpp"
#include "datasets.hpp"
#include "model.hpp"

namespace {

TEST(ModelV2, UnitsLookedUpAloneHaveTheirWindowsVersions) {
  // A sequential caller looks up a unit born windows back (a hot unit of dedup_skew, or
  // any at a high ratio) alone: from the table of the first windows, or by permutations.
  // A fresh cache tabulates its whole birth window. Rates that change no run of a window
  // (m = 0) included.
  struct Case {
    double ratio, skew, rate;
    uint64_t run;
  };
  for (const Case& c : {Case{2, 1, 0.3, 1}, Case{2, 1, 0.3, 3}, Case{2, 1, 0.0, 1},
                        Case{2, 0.5, 0.01, 1}, Case{100, 0, 0.05, 1}, Case{100, 0, 0.0, 2}}) {
    dgen::Params p;
    p.size = 256ull << 20;
    p.dedup_ratio = c.ratio;
    p.dedup_unit = 4096;
    p.dedup_run = c.run;
    p.dedup_skew = c.skew;
    p.generation = 7;
    p.change_rate = c.rate;
    const dgen::Dataset ds(p);
    dgen::VersionCache sequential;
    dgen::SlotCache slots;
    uint64_t far_back = 0, early = 0;
    for (uint64_t i = 0; i < ds.unit_count(); ++i) {
      const uint64_t id = ds.unique_id(i, slots), w = i / c.run / 64;
      if (w >= 2 && id / c.run < ds.unique_before((w - 1) * 64))
        ++far_back, early += id / c.run < ds.unique_before(64 * 64);
      ASSERT_EQ(ds.version(id, 7, sequential), ds.version(id, 7))
          << "ratio " << c.ratio << " skew " << c.skew << " rate " << c.rate << " run " << c.run
          << " unit " << i;
    }
    EXPECT_GT(far_back - early, 500u);  // by permutations
    if (c.skew > 0) EXPECT_GT(early, 500u) << c.rate;  // from the table of the first windows
  }
}

TEST(ModelV2, VersionIsTheLatestRewriteThatChangedTheUnit) {
  // Against the definition, one permutation per generation (changed_at), whatever way
  // version() takes: tables, inversions, forward permutations, batches of generations.
  std::mt19937_64 rng(23);
  for (double ratio : {1.5, 2.0, 100.0})
    for (double rate : {0.0, 0.01, 0.3, 0.99})
      for (uint64_t g : {1, 7, 40}) {
        dgen::Params p;
        p.size = 1ull << 36;
        p.dedup_ratio = ratio;
        p.dedup_unit = 4096;
        p.generation = g;
        p.change_rate = rate;
        const dgen::Dataset ds(p);
        dgen::VersionCache cache;
        for (int i = 0; i < 300; ++i) {
          const uint64_t id = i < 150 ? uint64_t(i) : rng() % ds.unique_count();
          uint64_t want = 0;
          for (uint64_t h = g; h > 0 && want == 0; --h)
            if (ds.changed_at(id, h)) want = h;
          ASSERT_EQ(ds.version(id, g, cache), want) << ratio << " " << rate << " g " << g << " id " << id;
        }
      }
}

TEST(ModelV2, EachGenerationChangesTheChangeRateShareOfUnits) {
  for (double r : {1.0, 2.0, 3.7})
    for (double c : {0.05, 0.3, 1.0})
      for (uint64_t g : {1, 2, 7}) {
        const auto before = gen(64 * 300, r, g - 1, c), after = gen(64 * 300, r, g, c);
        uint64_t differ = 0;
        for (uint64_t i = 0; i < after.unit_count(); ++i)
          differ += before.unit_key(before.unique_id(i)) != after.unit_key(after.unique_id(i));
        EXPECT_NEAR(double(differ) / double(after.unit_count()), c, 0.01)
            << "r " << r << " c " << c << " g " << g;
      }
}

TEST(ModelV2, VersionsThroughTheCacheAreTheVersionsOneByOne) {
  for (double r : {1.0, 2.0, 3.7})
    for (uint64_t g : {1, 4, 30}) {
      const auto ds = gen(64 * 20, r, g, 0.2, 2);
      dgen::VersionCache cache;
      for (uint64_t i = 0; i < ds.unit_count(); ++i) {
        const uint64_t id = ds.unique_id(i);
        uint64_t alone = 0;  // the definition: the latest generation that changed its run
        for (uint64_t h = g; h > 0 && !alone; --h)
          if (ds.version(id, h) == h) alone = h;
        ASSERT_EQ(ds.version(id, g, cache), alone) << "r " << r << " g " << g << " unit " << i;
      }
    }
}

TEST(ModelV2, VersionsOfHotUnitsThroughTheCacheAreTheVersionsOneByOne) {
  // dedup_skew repeats units born windows earlier: they are looked up run by run.
  for (uint64_t g : {1, 9}) {
    dgen::Params p{3, 64 * 60 * 4096, 2.0, 1.0, 4096};
    p.generation = g;
    p.change_rate = 0.3;
    p.dedup_skew = 1.0;
    const dgen::Dataset ds(p);
    dgen::VersionCache cache;
    for (uint64_t i = 0; i < ds.unit_count(); ++i) {
      const uint64_t id = ds.unique_id(i);
      ASSERT_EQ(ds.version(id, g, cache), ds.version(id, g)) << "g " << g << " unit " << i;
    }
  }
}

TEST(ModelV2, ChangedUnitsAreTheUnitsWhoseContentDiffers) {
  for (double r : {1.0, 2.0, 3.7})
    for (double c : {0.05, 0.3, 1.0})
      for (uint64_t run : {1, 3}) {
        const uint64_t units = 64 * 40 * run + 5;
        const auto before = gen(units, r, 3, c, run), after = gen(units, r, 4, c, run);
        std::vector<bool> differs(after.unit_count());
        for (uint64_t i = 0; i < after.unit_count(); ++i) {
          differs[i] = before.unit_key(before.unique_id(i)) != after.unit_key(after.unique_id(i));
          ASSERT_EQ(after.changed_at(after.unique_id(i), 4), differs[i]) << i;
        }
        // Any sub-range: the same units, as merged ranges.
        for (auto [a, b] : {std::pair<uint64_t, uint64_t>{0, after.unit_count()}, {7, 1000}}) {
          std::vector<bool> listed(after.unit_count());
          bool first = true;
          uint64_t last_end = 0;
          for (auto [lo, hi] : after.changed_units(a, b, 4)) {
            ASSERT_TRUE(lo >= a && lo < hi && hi <= b);
            if (!first) ASSERT_GT(lo, last_end);  // in order and merged
            first = false;
            last_end = hi;
            for (uint64_t i = lo; i < hi; ++i) listed[i] = true;
          }
          for (uint64_t i = a; i < b; ++i)
            ASSERT_EQ(listed[i], bool(differs[i])) << "r " << r << " c " << c << " unit " << i;
        }
      }
  EXPECT_THROW((void)gen(4096, 2.0, 1, 0.5).changed_at(0, 0), std::invalid_argument);
}

TEST(ModelV2, ChangedUnitsPerWindowAreExact) {
  // floor(c n + 1/2) of the first n ids change, n at every window's end.
  const auto ds = gen(64 * 200, 2.0, 3, 0.3);
  uint64_t changed = 0;
  for (uint64_t w = 0; w < 200; ++w) {
    const uint64_t a = ds.unique_before(w * 64), b = ds.unique_before((w + 1) * 64);
    for (uint64_t id = a; id < b; ++id) changed += ds.version(id, 3) == 3;
    ASSERT_EQ(changed, uint64_t(std::floor(0.3 * double(b) + 0.5))) << w;
  }
}

TEST(ModelV2, GenerationsKeepTheLayoutAndChangeOnlyContent) {
  const auto g0 = gen(64 * 50, 2.0, 0, 0.3, 4), g5 = gen(64 * 50, 2.0, 5, 0.3, 4);
  ASSERT_EQ(g0.unique_count(), g5.unique_count());
  std::set<uint64_t> keys0, keys5, both;
  for (uint64_t i = 0; i < g0.unit_count(); ++i) {
    ASSERT_EQ(g0.unique_id(i), g5.unique_id(i));
    keys0.insert(g0.unit_key(g0.unique_id(i)));
    keys5.insert(g5.unit_key(g5.unique_id(i)));
  }
  EXPECT_EQ(keys0.size(), g0.unique_count());  // distinct ids keep distinct content
  EXPECT_EQ(keys5.size(), g5.unique_count());
  // Generation 0 of format 2 is the plain layout, byte for byte.
  const dgen::Dataset plain(dgen::Params{21, 64 * 50 * 4096, 2.0, 1.0, 4096, 2, 4});
  EXPECT_EQ(plain.unit_key(7), g0.unit_key(7));
}

TEST(ModelV2, GenerationsAreRefusedOutOfRangeAndInFormat1) {
  dgen::Params p{1, 1 << 20, 2, 1, 4096, 2};
  p.change_rate = 1.5;
  EXPECT_THROW(dgen::Dataset{p}, std::invalid_argument);
  p.change_rate = std::nan("");
  EXPECT_THROW(dgen::Dataset{p}, std::invalid_argument);
  p.change_rate = 0.5;
  p.generation = dgen::kMaxGeneration;
  EXPECT_THROW(dgen::Dataset{p}, std::invalid_argument);
  p.generation = 2;
  p.format_version = 1;
  EXPECT_THROW(dgen::Dataset{p}, std::invalid_argument);
}

TEST(ModelV3, EachGenerationChangesTheChangeRateShareOfRunsWhateverTheWindow) {
  // Changes are counted per 64 runs born, so a window of one run still changes a keyed
  // share, and other runs in each generation.
  for (uint64_t window : {1, 4, 64})
    for (double c : {0.1, 0.3}) {
      dgen::Params p{3, 64 * 64 * 4 * 4096, 2.0, 1.0, 4096, 3};
      p.dedup_run = 4, p.dedup_window = window, p.change_rate = c;
      std::vector<std::set<uint64_t>> changed(3);
      for (uint64_t g : {1, 2}) {
        p.generation = g;
        const dgen::Dataset ds(p);
        uint64_t n = 0;
        for (uint64_t id = 0; id < ds.unique_count(); id += 4)
          if (ds.changed_at(id, g)) changed[g].insert(id), ++n;
        const uint64_t runs = ds.unique_count() / 4;
        ASSERT_EQ(n, uint64_t(std::floor(c * double(runs) + 0.5))) << window << " " << c;
      }
      std::vector<uint64_t> both;
      std::set_intersection(changed[1].begin(), changed[1].end(), changed[2].begin(),
                            changed[2].end(), std::back_inserter(both));
      EXPECT_LT(double(both.size()), 2 * c * double(changed[1].size()) + 4) << window << " " << c;
    }
}

TEST(ModelV3, VersionsThroughTheCacheAreTheVersionsOneByOne) {
  // Plain and skewed (hot units born windows back), in windows of 1, 16 and 64 runs.
  for (uint64_t window : {1, 16, 64})
    for (double skew : {0.0, 1.0})
      for (uint64_t g : {1, 4, 30}) {
        if (window == 1 && skew > 0) continue;  // no copies to spare for a hot set
        dgen::Params p{21, 64 * 40 * 4096, 2.0, 1.0, 4096, 3};
        p.dedup_run = 2, p.dedup_window = window, p.generation = g, p.change_rate = 0.2;
        p.dedup_skew = skew;
        const dgen::Dataset ds(p);
        dgen::VersionCache cache;
        for (uint64_t i = 0; i < ds.unit_count(); ++i) {
          const uint64_t id = ds.unique_id(i);
          uint64_t alone = 0;  // the definition: the latest generation that changed its run
          for (uint64_t h = g; h > 0 && !alone; --h)
            if (ds.changed_at(id, h)) alone = h;
          ASSERT_EQ(ds.version(id, g, cache), alone)
              << "window " << window << " skew " << skew << " g " << g << " unit " << i;
        }
      }
}

}  // namespace
