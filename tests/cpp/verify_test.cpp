// verify(): exact offsets for every kind of damage; Interrupted stops long calls.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
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

TEST(Interrupt, AThrowingPollLeavesThePoolUsable) {
  dgen::Dataset ds(dgen::Params{1, 1ull << 30, 1, 1, 131072});
  std::vector<uint8_t> v(1u << 30);  // lasts past the first poll, 20 ms in
  for (unsigned threads : {1u, 2u}) {
    dgen::FillOptions opt{.threads = threads, .block_size = 65536,
                          .interrupted = []() -> bool { throw std::runtime_error("poll"); }};
    EXPECT_THROW(dgen::fill(ds, 0, v, opt), std::runtime_error);
  }
  std::vector<uint8_t> a(8u << 20), b(8u << 20);
  dgen::fill(ds, 0, a, {.threads = 2, .block_size = 65536});
  dgen::fill(ds, 0, b, {.threads = 1});
  EXPECT_EQ(a, b);
}

}  // namespace
