// verify(): exact offsets for every kind of damage; Interrupted stops long calls.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "dgen/dgen.hpp"

namespace {

const dgen::Params kParams{17, 8 * 131072 + 1000, 2.0, 2.0, 131072};

std::vector<uint8_t> data() {
  std::vector<uint8_t> v(kParams.size);
  dgen::fill(dgen::Dataset(kParams), 0, v);
  return v;
}

dgen::VerifyResult check(const std::vector<uint8_t>& v, uint64_t offset = 0) {
  return dgen::verify(dgen::Dataset(kParams), offset,
                      std::span(v).subspan(offset), {2, 65536});
}

TEST(Verify, IntactDataPasses) {
  const auto r = check(data());
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.bytes, kParams.size);
  EXPECT_EQ(r.range_count, 0u);
  EXPECT_TRUE(check(data(), 123457).ok());
}

TEST(Verify, AFlippedByteIsFoundAtItsOffset) {
  auto v = data();
  v[500'001] ^= 0x01;
  const auto r = check(v);
  ASSERT_EQ(r.range_count, 1u);
  EXPECT_EQ(r.ranges[0].offset, 500'001u);
  EXPECT_EQ(r.ranges[0].length, 1u);
  EXPECT_EQ(r.mismatched_bytes, 1u);
  EXPECT_FALSE(r.ranges[0].zeros);
}

TEST(Verify, AZeroedPageReadsAsZeros) {
  auto v = data();
  std::memset(v.data() + 3 * 4096, 0, 4096);
  const auto r = check(v);
  ASSERT_EQ(r.range_count, 1u);
  EXPECT_EQ(r.ranges[0].offset, 3u * 4096);
  EXPECT_EQ(r.ranges[0].length, 4096u);
  EXPECT_TRUE(r.ranges[0].zeros);
}

TEST(Verify, SwappedUnitsSayWhereTheyBelong) {
  auto v = data();
  // units 1 and 5 hold different ids (else the swap changes nothing)
  dgen::Dataset ds(kParams);
  uint64_t a = 1, b = 5;
  while (ds.unique_id(a) == ds.unique_id(b)) ++b;
  std::vector<uint8_t> tmp(v.begin() + a * 131072, v.begin() + (a + 1) * 131072);
  std::memcpy(v.data() + a * 131072, v.data() + b * 131072, 131072);
  std::memcpy(v.data() + b * 131072, tmp.data(), 131072);
  const auto r = check(v);
  ASSERT_EQ(r.range_count, 2u);
  EXPECT_EQ(r.ranges[0].offset, a * 131072);
  EXPECT_EQ(r.ranges[0].length, 131072u);
  EXPECT_EQ(r.ranges[0].belongs_at, int64_t(b * 131072));
  EXPECT_EQ(r.ranges[1].offset, b * 131072);
  EXPECT_EQ(r.ranges[1].belongs_at, int64_t(a * 131072));
}

TEST(Verify, SwappedNeighbourUnitsToo) {
  auto v = data();
  dgen::Dataset ds(kParams);
  uint64_t a = 2;
  while (ds.unique_id(a) == ds.unique_id(a + 1)) ++a;
  std::vector<uint8_t> tmp(v.begin() + a * 131072, v.begin() + (a + 1) * 131072);
  std::memcpy(v.data() + a * 131072, v.data() + (a + 1) * 131072, 131072);
  std::memcpy(v.data() + (a + 1) * 131072, tmp.data(), 131072);
  const auto r = check(v);
  ASSERT_EQ(r.range_count, 2u);
  EXPECT_EQ(r.ranges[0].offset, a * 131072);
  EXPECT_EQ(r.ranges[0].length, 131072u);
  EXPECT_EQ(r.ranges[0].belongs_at, int64_t((a + 1) * 131072));
  EXPECT_EQ(r.ranges[1].offset, (a + 1) * 131072);
  EXPECT_EQ(r.ranges[1].belongs_at, int64_t(a * 131072));
}

TEST(Verify, ReportsTheFirstRangesAndCountsAll) {
  auto v = data();
  for (int i = 0; i < 30; ++i) v[1000 + i * 10'000] ^= 0xFF;
  const auto r = dgen::verify(dgen::Dataset(kParams), 0, v, {}, 20);
  EXPECT_EQ(r.range_count, 30u);
  ASSERT_EQ(r.ranges.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(r.ranges[i].offset, 1000u + i * 10'000);
}

TEST(Verify, RangesAcrossBlocksMerge) {
  auto v = data();
  std::memset(v.data() + 65536 - 100, 0, 200);  // straddles a block boundary
  const auto r = check(v);
  ASSERT_EQ(r.range_count, 1u);
  EXPECT_EQ(r.ranges[0].offset, 65536u - 100);
  EXPECT_EQ(r.ranges[0].length, 200u);
}

// Damage of every kind but moved units (found within a piece only), near piece ends too.
std::vector<uint8_t> damaged(std::mt19937_64& rng) {
  auto v = data();
  for (int k = rng() % 12; k > 0; --k) {
    const uint64_t at = rng() % v.size();
    const uint64_t n = std::min<uint64_t>(v.size() - at, 1 + rng() % 300);
    if (rng() % 2)
      std::memset(v.data() + at, 0, n);
    else
      for (uint64_t i = at; i < at + n; i += 1 + rng() % 90) v[i] ^= 0x80;
  }
  return v;
}

TEST(Verifier, PiecesGiveTheResultOfOneCall) {
  std::mt19937_64 rng(11);
  const dgen::Dataset ds(kParams);
  for (int round = 0; round < 200; ++round) {
    const auto v = damaged(rng);
    const size_t max_ranges = rng() % 8;
    const auto whole = dgen::verify(ds, 0, v, {2, 65536}, max_ranges);
    dgen::Verifier pieces(ds, max_ranges);
    for (uint64_t at = 0; at < v.size();) {
      const uint64_t n = std::min<uint64_t>(v.size() - at, rng() % 3 ? rng() % 200 : rng() % 300000);
      pieces.add(at, std::span(v).subspan(at, n), {2, 65536});
      at += n;
    }
    const auto& r = pieces.result();
    ASSERT_EQ(r.bytes, whole.bytes);
    ASSERT_EQ(r.mismatched_bytes, whole.mismatched_bytes) << "round " << round;
    ASSERT_EQ(r.range_count, whole.range_count) << "round " << round;
    ASSERT_EQ(r.ranges.size(), whole.ranges.size());
    for (size_t i = 0; i < r.ranges.size(); ++i) {
      EXPECT_EQ(r.ranges[i].offset, whole.ranges[i].offset) << "round " << round << " range " << i;
      EXPECT_EQ(r.ranges[i].length, whole.ranges[i].length) << "round " << round << " range " << i;
      EXPECT_EQ(r.ranges[i].zeros, whole.ranges[i].zeros) << "round " << round << " range " << i;
    }
  }
}

TEST(Verifier, LastIsTheLastRangeOfOneCallListedOrNot) {
  std::mt19937_64 rng(12);
  const dgen::Dataset ds(kParams);
  for (int round = 0; round < 50; ++round) {
    const auto v = damaged(rng);
    const auto all = dgen::verify(ds, 0, v, {2, 65536}, SIZE_MAX);
    dgen::Verifier pieces(ds, rng() % 3);  // mostly fewer listed than found
    for (uint64_t at = 0; at < v.size(); at += 70000)
      pieces.add(at, std::span(v).subspan(at, std::min<uint64_t>(70000, v.size() - at)));
    ASSERT_EQ(pieces.last() == nullptr, all.ranges.empty()) << "round " << round;
    if (pieces.last()) {
      EXPECT_EQ(pieces.last()->offset, all.ranges.back().offset) << "round " << round;
      EXPECT_EQ(pieces.last()->length, all.ranges.back().length) << "round " << round;
    }
  }
}

TEST(Verifier, AZeroedStretchAcrossPiecesIsOneZerosRange) {
  auto v = data();
  std::memset(v.data() + 100'000, 0, 50'000);
  dgen::Verifier pieces{dgen::Dataset(kParams)};
  for (uint64_t at = 0; at < v.size(); at += 4099)
    pieces.add(at, std::span(v).subspan(at, std::min<uint64_t>(4099, v.size() - at)));
  const auto& r = pieces.result();
  ASSERT_EQ(r.range_count, 1u);
  EXPECT_EQ(r.ranges[0].offset, 100'000u);
  EXPECT_EQ(r.ranges[0].length, 50'000u);
  EXPECT_TRUE(r.ranges[0].zeros);
}

TEST(Verifier, ZeroedStretchesWithDataBetweenAreNotZeros) {
  auto v = data();
  std::memset(v.data() + 1000, 0, 100);  // [1000, 1100) and [1130, 1200): data between
  std::memset(v.data() + 1130, 0, 70);
  for (uint64_t split : {1000, 1100, 1115, 1130, 1150}) {
    dgen::Verifier pieces{dgen::Dataset(kParams)};
    pieces.add(0, std::span(v).subspan(0, split), {2, 65536});
    pieces.add(split, std::span(v).subspan(split), {2, 65536});
    const auto& r = pieces.result();
    ASSERT_EQ(r.range_count, 1u) << "split at " << split;
    EXPECT_EQ(r.ranges[0].offset, 1000u);
    EXPECT_EQ(r.ranges[0].length, 200u);
    EXPECT_FALSE(r.ranges[0].zeros) << "split at " << split;
  }
}

TEST(Verifier, ARangeNextToAMovedUnitIsTrimmedAlikeInPiecesAndInOneCall) {
  const dgen::Params p{3, 1 << 20, 1.0, 1.0, 4096};
  const dgen::Dataset ds(p);
  std::vector<uint8_t> v(p.size);
  dgen::fill(ds, 0, v);
  v[8162] ^= 1;  // 30 bytes before unit 2, which swaps with unit 3
  std::swap_ranges(v.begin() + 8192, v.begin() + 12288, v.begin() + 12288);
  const auto whole = dgen::verify(ds, 0, v);
  dgen::Verifier pieces(ds);
  pieces.add(0, std::span(v).subspan(0, 8192));
  pieces.add(8192, std::span(v).subspan(8192));
  for (const auto* r : {&whole, &pieces.result()}) {
    ASSERT_EQ(r->range_count, 3u);  // the flip, then each unit holding the other
    EXPECT_EQ(r->ranges[0].offset, 8162u);
    EXPECT_EQ(r->ranges[0].length, 1u);
    EXPECT_EQ(r->ranges[1].belongs_at, 12288);
    EXPECT_EQ(r->ranges[2].belongs_at, 8192);
  }
}

TEST(Verifier, AGapIsNotComparedAndEndsARange) {
  auto v = data();
  v[9'999] ^= 1;  // the last byte before the gap
  v[10'020] ^= 1; // 20 bytes after it: close, but the bytes between were not compared
  dgen::Verifier pieces{dgen::Dataset(kParams)};
  pieces.add(0, std::span(v).subspan(0, 10'000), {2, 65536});
  pieces.add(10'010, std::span(v).subspan(10'010, 1000), {2, 65536});
  const auto& r = pieces.result();
  EXPECT_EQ(r.bytes, 11'000u);
  EXPECT_EQ(r.range_count, 2u);
  EXPECT_THROW(pieces.add(10'500, std::span(v).subspan(10'500, 10)), std::invalid_argument);
  EXPECT_THROW(pieces.add(kParams.size, std::span(v).subspan(0, 1)), std::out_of_range);
  EXPECT_EQ(r.bytes, 11'000u);  // refused pieces are not counted
}

TEST(Interrupt, StopsALongFillAndThrows) {
  dgen::Dataset ds(dgen::Params{1, 1ull << 30, 1, 1, 131072});
  std::vector<uint8_t> v(512u << 20);  // one thread needs > 20 ms: a poll happens
  std::atomic<int> polls{0};
  dgen::FillOptions opt{.threads = 1, .block_size = 65536,
                        .interrupted = [&] { return ++polls >= 1; }};
  EXPECT_THROW(dgen::fill(ds, 0, v, opt), dgen::Interrupted);
  EXPECT_EQ(polls.load(), 1);
  dgen::FillOptions never{.threads = 1, .block_size = 65536, .interrupted = [] { return false; }};
  EXPECT_NO_THROW(dgen::fill(ds, 0, std::span(v).first(1u << 20), never));
}

// The poll's own error type, unrelated to Interrupted: a pool that swallowed the poll's
// error and threw Interrupted (a std::runtime_error) instead fails here.
struct PollError {};

TEST(Interrupt, AThrowingPollLeavesThePoolUsable) {
  dgen::Dataset ds(dgen::Params{1, 1ull << 30, 1, 1, 131072});
  std::vector<uint8_t> v(1u << 30);  // lasts past the first poll, 20 ms in
  for (unsigned threads : {1u, 2u}) {
    dgen::FillOptions opt{.threads = threads, .block_size = 65536,
                          .interrupted = []() -> bool { throw PollError{}; }};
    EXPECT_THROW(dgen::fill(ds, 0, v, opt), PollError);
  }
  std::vector<uint8_t> a(8u << 20), b(8u << 20);
  dgen::fill(ds, 0, a, {.threads = 2, .block_size = 65536});
  dgen::fill(ds, 0, b, {.threads = 1});
  EXPECT_EQ(a, b);
}

TEST(Stream, AFailedReadGivesItsRangeBack) {
  dgen::FillOptions opt{.threads = 1, .block_size = 65536, .interrupted = [] { return true; }};
  dgen::Stream s(dgen::Params{1, 1ull << 30, 1, 1, 131072}, opt);
  std::vector<uint8_t> v(512u << 20);  // one thread needs > 20 ms: a poll happens
  EXPECT_THROW(s.read(v), dgen::Interrupted);
  EXPECT_EQ(s.position(), 0u);
}

}  // namespace

namespace {

TEST(Verify, ALostWriteIsReportedWithTheGenerationItHolds) {
  // Generation 3; one unit overwritten by its generation-2 content, one by another unit's,
  // one page zeroed: three ranges, each with its kind and exact offsets.
  dgen::Params p{5, 64 * 65536, 2.0, 2.0, 65536, 2};
  p.generation = 3;
  p.change_rate = 1.0;
  const dgen::Dataset ds(p);
  std::vector<uint8_t> data(ds.size());
  dgen::fill(ds, 0, data);
  const uint64_t unit = 65536, stale_at = 5 * unit, moved_to = 20 * unit, moved_from = 41 * unit;
  dgen::fill(ds.at_generation(2), stale_at, std::span(data).subspan(stale_at, unit));
  std::vector<uint8_t> other(unit);
  dgen::fill(ds, moved_from, other);
  std::copy(other.begin(), other.end(), data.begin() + long(moved_to));
  std::fill(data.begin() + long(50 * unit), data.begin() + long(50 * unit + 4096), 0);
  const auto r = dgen::verify(ds, 0, data);
  ASSERT_EQ(r.range_count, 3u);
  EXPECT_EQ(r.ranges[0].offset, stale_at);
  EXPECT_EQ(r.ranges[0].length, unit);
  EXPECT_EQ(r.ranges[0].stale_generation, 2);
  EXPECT_EQ(r.ranges[1].offset, moved_to);
  EXPECT_EQ(r.ranges[1].length, unit);
  EXPECT_EQ(r.ranges[1].stale_generation, -1);
  ASSERT_GE(r.ranges[1].belongs_at, 0);  // where that content belongs (it has copies)
  EXPECT_EQ(ds.unique_id(uint64_t(r.ranges[1].belongs_at) / unit), ds.unique_id(moved_from / unit));
  EXPECT_TRUE(r.ranges[2].zeros);
  EXPECT_EQ(r.ranges[2].offset, 50 * unit);
  EXPECT_EQ(r.ranges[2].length, 4096u);
}

}  // namespace
