// Content profiles (src/core/content.hpp): pages are a function of their keys, the same on
// every ISA path and in any batch, pinned by golden digests.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "content.hpp"
#include "sha256.hpp"
#include "simd_available.hpp"

namespace {

using dgen::content::Kind;

std::vector<uint64_t> some_keys(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> k(n);
  for (auto& x : k) x = rng();
  return k;
}

std::vector<uint8_t> make(Kind kind, int level, const std::vector<uint64_t>& keys,
                          const dgen::kernels::Table& t) {
  std::vector<uint8_t> out(4096 * keys.size());
  dgen::content::pages(out.data(), keys.data(), keys.size(), dgen::content::model_at(kind, level),
                       t);
  return out;
}

TEST(Content, NamesParseAndOthersAreRefused) {
  for (Kind k : {Kind::flat, Kind::binary, Kind::text}) {
    Kind got{};
    ASSERT_TRUE(dgen::content::parse(dgen::content::name(k), got));
    EXPECT_EQ(got, k);
  }
  Kind got{};
  EXPECT_FALSE(dgen::content::parse("Binary", got));
  EXPECT_FALSE(dgen::content::parse("", got));
  EXPECT_FALSE(dgen::content::parse("random", got));
}

TEST(Content, APageDependsOnItsKeyOnly) {
  const auto& t = dgen::kernels::scalar();
  const auto keys = some_keys(13, 1);
  for (Kind kind : {Kind::binary, Kind::text}) {
    const auto all = make(kind, 128, keys, t);
    for (size_t i = 0; i < keys.size(); ++i) {
      const auto one = make(kind, 128, {keys[i]}, t);
      EXPECT_EQ(0, std::memcmp(one.data(), all.data() + 4096 * i, 4096)) << "page " << i;
    }
  }
}

TEST(Content, ScalarAndSimdPathsWriteTheSameBytes) {
  const auto tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  const auto keys = some_keys(37, 2);
  for (const dgen::kernels::Table* t : tables)
    for (Kind kind : {Kind::binary, Kind::text})
      for (int level : {0, 1, 64, 128, 200, 255})
        EXPECT_EQ(make(kind, level, keys, dgen::kernels::scalar()), make(kind, level, keys, *t))
            << t->name << " " << dgen::content::name(kind) << " level " << level;
}

TEST(Content, DistinctKeysGiveDistinctPagesAndNoneIsZeros) {
  const auto keys = some_keys(2000, 3);
  const std::vector<uint8_t> zeros(4096, 0);
  for (Kind kind : {Kind::binary, Kind::text}) {
    for (int level : {0, 255}) {
      const auto all = make(kind, level, keys, dgen::kernels::active());
      std::set<std::string> seen;
      for (size_t i = 0; i < keys.size(); ++i) {
        const char* p = reinterpret_cast<const char*>(all.data() + 4096 * i);
        EXPECT_NE(0, std::memcmp(p, zeros.data(), 4096));
        seen.emplace(p, 4096);
      }
      EXPECT_EQ(seen.size(), keys.size());
    }
  }
}

TEST(Content, LevelGrowsWithTheRequestedRatio) {
  for (Kind kind : {Kind::binary, Kind::text}) {
    int last = -1;
    for (double r = 1.0; r <= 12; r += 0.25) {
      const int level = dgen::content::model_for(kind, r).level;
      EXPECT_GE(level, last) << r;
      EXPECT_LT(level, dgen::content::kLevels);
      last = level;
    }
    EXPECT_EQ(dgen::content::model_for(kind, 1.0).level, 0);
    EXPECT_EQ(dgen::content::model_for(kind, 100.0).level, dgen::content::kLevels - 1);
  }
}

// The bytes of each profile at three levels, pinned: a change here is a new format.
TEST(Content, GoldenDigests) {
  const auto keys = some_keys(64, 4);
  struct Row {
    Kind kind;
    int level;
    const char* sha256;
  };
  const Row rows[] = {
      {Kind::binary, 0, "6895f3b6b2724bea219f1ec5dcd9bd0bc8ff2b508f162e9068acffd9e82ddc9b"},
      {Kind::binary, 128, "e372461074816886ff404c07144de52e64278f0dc34b1becb313a10167d3f1ef"},
      {Kind::binary, 255, "cabd5cfb43acbc3b685548d889eaa364f22a43bc1b588f988e1a0ac0e6b99f48"},
      {Kind::text, 0, "dcc8b46d7a9ba16ef4d4632083deb4225e1de496a0b6d5f8d1de59a06975ba6b"},
      {Kind::text, 128, "cf7d1c1162a77277bd1d9f5c6d575c67cb9bb7353f2284635d1d61c80d73f4b1"},
      {Kind::text, 255, "89711d6875dbb1511b7e0d71466da3ec92da2ee6fc900ca5dfe3a16af0150757"},
  };
  for (const Row& r : rows) {
    const auto bytes = make(r.kind, r.level, keys, dgen::kernels::active());
    EXPECT_EQ(sha256_hex(bytes.data(), bytes.size()), r.sha256)
        << dgen::content::name(r.kind) << " level " << r.level;
  }
}

}  // namespace
