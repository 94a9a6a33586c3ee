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
  if (!simd_available()) GTEST_SKIP() << "no SIMD path on this CPU";
  const auto keys = some_keys(37, 2);
  for (Kind kind : {Kind::binary, Kind::text})
    for (int level : {0, 1, 64, 128, 200, 255})
      EXPECT_EQ(make(kind, level, keys, dgen::kernels::scalar()),
                make(kind, level, keys, *dgen::kernels::avx2()))
          << dgen::content::name(kind) << " level " << level;
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
      {Kind::binary, 0, "766728fc68bd8fa8bc2e66c22a573fc203f9b7a8c937aab61a82b335c173fbae"},
      {Kind::binary, 128, "3f8fbaf8e4d695ffa89bcce08ecafa1afd5c835b8bbc589ecebe7c028f49b5d4"},
      {Kind::binary, 255, "d1fa3c3210b34a46f8a5bbe69c3fee49647a59ee8bdae72539c030f8c4088b63"},
      {Kind::text, 0, "db23daf7007ee6555c87be431b2c212c87fd4cc9610f8535a7b64d8a5c25bb38"},
      {Kind::text, 128, "55b49af91cd4d057a828930490d66ed9a2d702ead61d96e65e64664b2557fbd8"},
      {Kind::text, 255, "5b72d2d491145dabcdd15dbe98db380f6e2a4774ccdd415ae66c883ecf4d8a8e"},
  };
  for (const Row& r : rows) {
    const auto bytes = make(r.kind, r.level, keys, dgen::kernels::active());
    EXPECT_EQ(sha256_hex(bytes.data(), bytes.size()), r.sha256)
        << dgen::content::name(r.kind) << " level " << r.level;
  }
}

}  // namespace
