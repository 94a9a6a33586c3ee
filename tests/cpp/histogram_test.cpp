#include "dgen/histogram.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace {

TEST(Histogram, CountsEveryByteAtEveryLengthAndAlignment) {
  std::mt19937_64 rng(7);
  std::vector<uint8_t> data(4099);
  for (auto& b : data) b = uint8_t(rng() % 7 == 0 ? 0 : rng());  // runs of zeros too
  for (size_t start : {0, 1, 5}) {
    for (size_t len : {0, 1, 7, 8, 9, 63, 4093}) {
      std::array<uint64_t, 256> got{}, want{};
      got[3] = 10;  // counts are added to, not replaced
      want[3] = 10;
      for (size_t i = start; i < start + len; ++i) ++want[data[i]];
      dgen::add_byte_histogram({data.data() + start, len}, got);
      EXPECT_EQ(got, want) << "start " << start << " length " << len;
    }
  }
}

TEST(Histogram, OneByteValueRepeated) {
  std::vector<uint8_t> data(100000, 0xAB);
  std::array<uint64_t, 256> got{};
  dgen::add_byte_histogram(data, got);
  EXPECT_EQ(got[0xAB], data.size());
  EXPECT_EQ(got[0xAA] + got[0xAC] + got[0], 0u);
}

}  // namespace
