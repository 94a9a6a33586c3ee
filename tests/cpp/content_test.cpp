// Content profiles (src/core/content.hpp): pages are a function of their keys, the same on
// every ISA path and in any batch, pinned by golden digests.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "content.hpp"
#include "dgen/dgen.hpp"
#include "model.hpp"
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
                          const dgen::kernels::Table& t, int version) {
  std::vector<uint8_t> out(4096 * keys.size());
  dgen::content::pages(out.data(), keys.data(), keys.size(),
                       dgen::content::model_at(kind, level, version), t);
  return out;
}

constexpr int kVersions[] = {1, 2, 3};

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
  for (int v : kVersions)
    for (Kind kind : {Kind::binary, Kind::text}) {
      const auto all = make(kind, 128, keys, t, v);
      for (size_t i = 0; i < keys.size(); ++i) {
        const auto one = make(kind, 128, {keys[i]}, t, v);
        EXPECT_EQ(0, std::memcmp(one.data(), all.data() + 4096 * i, 4096)) << "page " << i;
      }
    }
}

TEST(Content, ScalarAndSimdPathsWriteTheSameBytes) {
  const auto tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  const auto keys = some_keys(37, 2);
  for (const dgen::kernels::Table* t : tables)
    for (int v : kVersions)
      for (Kind kind : {Kind::binary, Kind::text})
        for (int level : {0, 1, 64, 128, 200, 255})
          EXPECT_EQ(make(kind, level, keys, dgen::kernels::scalar(), v),
                    make(kind, level, keys, *t, v))
              << t->name << " " << dgen::content::name(kind) << " level " << level << " v" << v;
}

TEST(Content, DistinctKeysGiveDistinctPagesAndNoneIsZeros) {
  const auto keys = some_keys(2000, 3);
  const std::vector<uint8_t> zeros(4096, 0);
  for (int v : kVersions) {
    for (Kind kind : {Kind::binary, Kind::text}) {
      for (int level : {0, 255}) {
        const auto all = make(kind, level, keys, dgen::kernels::active(), v);
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
}

TEST(Content, LevelGrowsWithTheRequestedRatio) {
  for (int v : kVersions)
    for (Kind kind : {Kind::binary, Kind::text}) {
      int last = -1;
      for (double r = 1.0; r <= 12; r += 0.25) {
        const auto m = dgen::content::model_for(kind, r, v);
        EXPECT_GE(m.level, last) << r;
        EXPECT_LT(m.level, dgen::content::kLevels);
        EXPECT_EQ(m.version, v);
        last = m.level;
      }
      EXPECT_EQ(dgen::content::model_for(kind, 1.0, v).level, 0);
      EXPECT_EQ(dgen::content::model_for(kind, 100.0, v).level, dgen::content::kLevels - 1);
    }
}

// The calibration's ratio of the level a request picks: the request (within half a step of
// the table) inside the profile's range, its ends outside; what a dataset reports.
TEST(Content, CalibratedRatioIsTheRequestInsideTheRangeAndTheEndsOutside) {
  for (int v : kVersions)
    for (Kind kind : {Kind::binary, Kind::text}) {
      using dgen::content::calibrated_ratio, dgen::content::model_for;
      const double lo = calibrated_ratio(model_for(kind, 1.0, v));
      const double hi = calibrated_ratio(model_for(kind, 1000.0, v));
      EXPECT_GT(lo, 1.0);
      EXPECT_LT(lo, 1.1);
      EXPECT_GT(hi, 9.0);
      EXPECT_LT(hi, 12.0);
      for (double r = 1.5; r <= 8; r += 0.5)
        EXPECT_NEAR(calibrated_ratio(model_for(kind, r, v)), r, 0.03 * r)
            << dgen::content::name(kind) << " v" << v << " " << r;
      for (double r : {hi * 1.5, 50.0, 128.0})
        EXPECT_EQ(calibrated_ratio(model_for(kind, r, v)), hi);
    }
  for (int format : {2, 4, 5})
    for (Kind kind : {Kind::binary, Kind::text}) {
      dgen::Params p;
      p.size = 1 << 20, p.compress_ratio = 50, p.format_version = format;
      p.content = dgen::content::name(kind);
      const double top = dgen::content::calibrated_ratio(
          dgen::content::model_for(kind, 1000.0, dgen::content::version_of_format(format)));
      EXPECT_EQ(dgen::Dataset(p).content_ratio(), top) << p.content << " format " << format;
      p.content = "flat";
      EXPECT_EQ(dgen::Dataset(p).content_ratio(), 50);
    }
  // Each version's own table: text's top differs between versions 2 and 3.
  EXPECT_NE(dgen::content::calibrated_ratio(dgen::content::model_for(Kind::text, 1000.0, 2)),
            dgen::content::calibrated_ratio(dgen::content::model_for(Kind::text, 1000.0, 3)));
}

TEST(Content, EachFormatHasItsVersionOfThePages) {
  EXPECT_EQ(dgen::content::version_of_format(1), 1);
  EXPECT_EQ(dgen::content::version_of_format(3), 1);
  EXPECT_EQ(dgen::content::version_of_format(4), 2);
  EXPECT_EQ(dgen::content::version_of_format(5), 3);
  const auto keys = some_keys(8, 6);
  const auto& t = dgen::kernels::scalar();
  for (int level : {0, 128, 255}) {
    for (Kind kind : {Kind::binary, Kind::text})
      EXPECT_NE(make(kind, level, keys, t, 1), make(kind, level, keys, t, 2))
          << dgen::content::name(kind) << " level " << level;
    EXPECT_NE(make(Kind::text, level, keys, t, 2), make(Kind::text, level, keys, t, 3)) << level;
    // binary's version 3 is its version 2, calibration included
    EXPECT_EQ(make(Kind::binary, level, keys, t, 2), make(Kind::binary, level, keys, t, 3));
    EXPECT_EQ(dgen::content::calibrated_ratio(dgen::content::model_at(Kind::binary, level, 2)),
              dgen::content::calibrated_ratio(dgen::content::model_at(Kind::binary, level, 3)));
  }
}

// Bits of a byte given the one before it, over `bytes`.
double order1_entropy(const std::vector<uint8_t>& bytes) {
  std::vector<double> pair(1 << 16), first(1 << 8);
  for (size_t i = 1; i < bytes.size(); ++i) {
    ++pair[bytes[i - 1] << 8 | bytes[i]];
    ++first[bytes[i - 1]];
  }
  double h = 0;
  for (size_t i = 0; i < pair.size(); ++i)
    if (pair[i] > 0) h -= pair[i] * std::log2(pair[i] / first[i >> 8]);
  return h / double(bytes.size() - 1);
}

// What version 3 of text is made for: words, whose letters the letter before predicts
// (docs/data-model.md, "Version 3"); version 2's literals are independent bytes.
TEST(Content, TextVersionThreeIsWordsThatTheByteBeforePredicts) {
  const auto keys = some_keys(256, 7);
  const auto& t = dgen::kernels::scalar();
  for (int level : {160, 170, 200}) {  // literals all words (fewer below), as at the corpus's
                                       // ratio
    const double v2 = order1_entropy(make(Kind::text, level, keys, t, 2));
    const double v3 = order1_entropy(make(Kind::text, level, keys, t, 3));
    EXPECT_LT(v3, v2 - 0.3) << "level " << level << ": v2 " << v2 << " v3 " << v3;
  }
}

// The bytes of each profile at three levels, pinned: a change here is a new format.
TEST(Content, GoldenDigests) {
  const auto keys = some_keys(64, 4);
  struct Row {
    Kind kind;
    int level;
    const char* sha256;
    int version = 1;
  };
  const Row rows[] = {
      {Kind::binary, 0, "6895f3b6b2724bea219f1ec5dcd9bd0bc8ff2b508f162e9068acffd9e82ddc9b"},
      {Kind::binary, 128, "e372461074816886ff404c07144de52e64278f0dc34b1becb313a10167d3f1ef"},
      {Kind::binary, 255, "cabd5cfb43acbc3b685548d889eaa364f22a43bc1b588f988e1a0ac0e6b99f48"},
      {Kind::text, 0, "dcc8b46d7a9ba16ef4d4632083deb4225e1de496a0b6d5f8d1de59a06975ba6b"},
      {Kind::text, 128, "cf7d1c1162a77277bd1d9f5c6d575c67cb9bb7353f2284635d1d61c80d73f4b1"},
      {Kind::text, 255, "89711d6875dbb1511b7e0d71466da3ec92da2ee6fc900ca5dfe3a16af0150757"},
      {Kind::binary, 0,
       "9bf9752a8de869e9aca978f172a6bc538bbf611a2071794449ddf0b9c918f1dc", 2},
      {Kind::binary, 128,
       "988199191fdd8ed37ddef15455475e07f24b1faf311b1c4c7b5d31820df298e9", 2},
      {Kind::binary, 255,
       "f7113af2b5a8c94db5ea25116c7fe517245aaa09acae70b523d0a7a6342f4065", 2},
      {Kind::text, 0,
       "ec71f6bd1ae7deff6fae018f48f8ce99c864cafa49a45e833cc4a9e9614ce8fd", 2},
      {Kind::text, 128,
       "e5adb326661fa23d84c9c9cc2119231dc1d5cb4d21529326fb481dcb6ef3bcff", 2},
      {Kind::text, 255,
       "bce55b299b02285bc8e016f55739aa22305b48f4b318ad74009a1d5d84a6e0ea", 2},
      {Kind::text, 0,
       "d6d1480e80fe6d823213cee7e42834d85969078be0c063878664e90e2310a826", 3},
      {Kind::text, 128,
       "00909f41f2d739eda0095b54bc484c988dcfa91d33c7616d9347173f4729a13f", 3},
      {Kind::text, 255,
       "259986975063e0ab5c2e6f5ccc66eedaee765c9a8f951852b41e3ebde0224f46", 3},
  };
  for (const Row& r : rows) {
    const auto bytes = make(r.kind, r.level, keys, dgen::kernels::active(), r.version);
    EXPECT_EQ(sha256_hex(bytes.data(), bytes.size()), r.sha256)
        << dgen::content::name(r.kind) << " level " << r.level << " version " << r.version;
  }
}

// Datasets with content (Params::content): the identity field wired through fill and verify.

dgen::Params with_content(const char* content, uint64_t size, double dedup, double compress,
                          uint64_t unit, uint64_t seed) {
  dgen::Params p{seed, size, dedup, compress, unit};
  p.content = content;
  return p;
}

std::vector<uint8_t> fill_all(const dgen::Params& p, dgen::FillOptions opt = {1, 0}) {
  std::vector<uint8_t> v(p.size);
  dgen::fill(dgen::Dataset(p), 0, v, opt);
  return v;
}

TEST(Content, DatasetRefusesAnUnknownContentNamingTheAcceptedOnes) {
  try {
    dgen::Dataset(with_content("zip", 4096, 1, 2, 4096, 1));
    FAIL() << "content 'zip' was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "content must be flat, binary or text, got 'zip'");
  }
}

TEST(Content, FlatIsTheDefaultAndGivesTodaysBytes) {
  EXPECT_EQ(dgen::Params{}.content, "flat");
  dgen::Params p{7, 300'001, 2, 3, 65536};
  EXPECT_EQ(fill_all(p), fill_all(with_content("flat", 300'001, 2, 3, 65536, 7)));
}

// A unit's page j is the profile's page of page_key(unit_key, j), at the level the
// compress ratio maps to: a page depends on its key only, as flat pages do.
TEST(Content, DatasetPagesAreTheProfilesPagesOfTheUsualKeys) {
  for (int format : {2, 3, 4, 5}) {
    for (const char* name : {"binary", "text"}) {
      auto p = with_content(name, 1 << 20, 2, 3, 65536, 5);
      p.format_version = format;
      const dgen::Dataset ds(p);
      const auto got = fill_all(p);
      Kind kind{};
      ASSERT_TRUE(dgen::content::parse(name, kind));
      const auto model =
          dgen::content::model_for(kind, 3, dgen::content::version_of_format(format));
      std::vector<uint64_t> keys;
      for (uint64_t u = 0; u < ds.unit_count(); ++u)
        for (uint64_t j = 0; j < 16; ++j)
          keys.push_back(dgen::model::page_key(ds.unit_key(ds.unique_id(u)), j));
      std::vector<uint8_t> want(4096 * keys.size());
      dgen::content::pages(want.data(), keys.data(), keys.size(), model,
                           dgen::kernels::scalar());
      EXPECT_EQ(got, want) << name << " format " << format;
      EXPECT_NE(got, fill_all(with_content("flat", 1 << 20, 2, 3, 65536, 5))) << name;
    }
  }
}

TEST(Content, ChunkingThreadsBlocksAndStreamingDoNotChangeBytes) {
  const uint64_t streamed = dgen::kernels::stream_threshold() + 11;
  std::vector<dgen::Params> all;
  for (const char* name : {"binary", "text"}) {
    all.push_back(with_content(name, 3'000'007, 2, 2.5, 4096, 9));
    auto p = with_content(name, 3'000'007, 2, 4, 16384, 9);
    p.dedup_run = 3, p.generation = 2, p.change_rate = 0.3, p.dedup_skew = 1.5;
    all.push_back(p);
    p.dedup_shift = true;
    all.push_back(p);
    p.format_version = 3, p.dedup_window = 16, p.dedup_shift = false;
    all.push_back(p);
    p.format_version = 4;
    all.push_back(p);
    p.format_version = 5;
    all.push_back(p);
    auto big = with_content(name, streamed, 2, 2, 131072, 4);
    all.push_back(big);
    big.dedup_shift = true, big.dedup_run = 5;
    all.push_back(big);
    big.dedup_unit = 4096, big.dedup_run = 1;  // a run of one page: through the ring
    all.push_back(big);
  }
  for (const auto& p : all) {
    const std::string what = p.content + " format " + std::to_string(p.format_version) +
                             " unit " + std::to_string(p.dedup_unit) + " run " +
                             std::to_string(p.dedup_run) + " shift " + std::to_string(p.dedup_shift);
    const auto ref = fill_all(p);
    ASSERT_EQ(ref, fill_all(p, {3, 4096 * 3})) << what;
    const dgen::Dataset ds(p);
    if (p.size >= streamed) {  // one streaming call, into buffers off the 32-byte grid
      for (size_t at : {0, 16, 5}) {
        std::vector<uint8_t> buf(p.size + 64);
        uint8_t* base = buf.data() + (32 - reinterpret_cast<uintptr_t>(buf.data()) % 32) % 32;
        dgen::fill(ds, 0, std::span(base + at, p.size), {1, 0});
        ASSERT_EQ(0, std::memcmp(ref.data(), base + at, p.size)) << what << " at " << at;
      }
    }
    std::mt19937_64 rng(p.size + p.dedup_run);
    std::vector<uint8_t> got(p.size);
    for (uint64_t off = 0; off < p.size;) {
      const uint64_t n = std::min<uint64_t>(p.size - off, 1 + rng() % 40000);
      dgen::fill(ds, off, std::span(got).subspan(off, n), {unsigned(1 + rng() % 3), 0});
      off += n;
    }
    ASSERT_EQ(ref, got) << what;
  }
}

// Shifted copies cut the run's content pages: a copy is its run's bytes rotated.
TEST(Content, AShiftedCopyIsItsRunsContentRotated) {
  auto p = with_content("binary", 8 << 20, 2, 3, 16384, 3);
  p.dedup_run = 4, p.dedup_shift = true;
  const dgen::Dataset ds(p);
  const auto bytes = fill_all(p);
  const uint64_t unit = p.dedup_unit, run = p.dedup_run, run_bytes = unit * run;
  const auto model = dgen::content::model_for(Kind::binary, 3, 1);
  int copies = 0;
  for (uint64_t r = 0; r + 1 <= ds.unit_count() / run; ++r) {
    const uint64_t shift = ds.shift(r * run);
    if (shift == 0) continue;
    std::vector<uint64_t> keys;
    const uint64_t first = ds.unique_id(r * run);
    for (uint64_t u = 0; u < run; ++u)
      for (uint64_t j = 0; j < unit / 4096; ++j)
        keys.push_back(dgen::model::page_key(ds.unit_key(first + u), j));
    std::vector<uint8_t> content(run_bytes);
    dgen::content::pages(content.data(), keys.data(), keys.size(), model, dgen::kernels::scalar());
    std::rotate(content.begin(), content.begin() + shift, content.end());
    ASSERT_EQ(0, std::memcmp(content.data(), bytes.data() + r * run_bytes, run_bytes)) << "run " << r;
    ++copies;
  }
  EXPECT_GT(copies, 10);
}

TEST(Content, APrefixIsTheSmallerDataset) {
  for (const char* name : {"binary", "text"}) {
    const auto big = fill_all(with_content(name, 2'000'000, 1.5, 3, 65536, 11));
    const auto small = fill_all(with_content(name, 777'777, 1.5, 3, 65536, 11));
    EXPECT_EQ(0, std::memcmp(big.data(), small.data(), small.size())) << name;
  }
}

// dedup 4 over 4 KiB units: exactly unique_count() distinct 4 KiB blocks.
TEST(Content, FixedBlockDedupIsExactAt4KiB) {
  for (const char* name : {"binary", "text"}) {
    const auto p = with_content(name, 64 * 64 * 4096, 4, 3, 4096, 2);
    const auto bytes = fill_all(p);
    std::set<std::string> blocks;
    for (uint64_t at = 0; at < bytes.size(); at += 4096)
      blocks.emplace(reinterpret_cast<const char*>(bytes.data() + at), 4096);
    EXPECT_EQ(blocks.size(), dgen::Dataset(p).unique_count()) << name;
    EXPECT_EQ(blocks.size(), 64u * 64 / 4) << name;
  }
}

TEST(Content, VerifyFindsAChangedByteAtItsExactOffset) {
  for (const char* name : {"binary", "text"}) {
    const auto p = with_content(name, 5'000'000, 2, 3, 131072, 8);
    const dgen::Dataset ds(p);
    auto bytes = fill_all(p);
    EXPECT_TRUE(dgen::verify(ds, 0, bytes).ok()) << name;
    for (uint64_t at : {uint64_t{0}, uint64_t{4095}, uint64_t{1'234'567}, p.size - 1}) {
      auto changed = bytes;
      changed[at] ^= 0x40;
      const auto r = dgen::verify(ds, 0, changed);
      ASSERT_EQ(r.mismatched_bytes, 1u) << name << " at " << at;
      ASSERT_EQ(r.ranges.size(), 1u);
      EXPECT_EQ(r.ranges[0].offset, at) << name;
      EXPECT_EQ(r.ranges[0].length, 1u) << name;
    }
    // A piece off the page grid, compared where it lies.
    EXPECT_TRUE(dgen::verify(ds, 12345, std::span(bytes).subspan(12345, 3'000'001)).ok());
  }
}

}  // namespace
