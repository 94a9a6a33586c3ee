// Golden vectors pin every data format version: every SIMD path and every release must
// reproduce them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dgen/dgen.hpp"
#include "golden_rows.hpp"
#include "kernels/kernels.hpp"
#include "sha256.hpp"

namespace {

void check_vectors(int version) {
  const int rows = golden_rows("golden_v" + std::to_string(version) + ".txt",
                               [&](std::istringstream& f, const std::string& line) {
    dgen::Params p;
    p.format_version = version;
    uint64_t offset, length;
    std::string want;
    ASSERT_TRUE(f >> p.seed >> p.size >> p.dedup_ratio >> p.compress_ratio >> p.dedup_unit) << line;
    if (version >= 2)
      ASSERT_TRUE(f >> p.dedup_run >> p.generation >> p.change_rate >> p.dedup_shift >>
                  p.dedup_skew) << line;
    if (version >= 3) ASSERT_TRUE(f >> p.dedup_window) << line;
    ASSERT_TRUE(f >> offset >> length >> want) << line;
    std::vector<uint8_t> bytes(length);
    dgen::fill(dgen::Dataset(p), offset, bytes);
    EXPECT_EQ(sha256_hex(bytes.data(), bytes.size()), want) << "isa " << dgen::isa_name() << ": " << line;
  });
  EXPECT_GE(rows, 8);
}

TEST(Golden, FormatV1Vectors) { check_vectors(1); }
TEST(Golden, FormatV2Vectors) { check_vectors(2); }
TEST(Golden, FormatV3Vectors) { check_vectors(3); }
TEST(Golden, FormatV4Vectors) { check_vectors(4); }
TEST(Golden, FormatV5Vectors) { check_vectors(5); }

// The content profiles (Params::content) in every format version; flat rows are the files
// above.
TEST(Golden, ContentVectors) {
  const int rows = golden_rows("golden_content.txt", [&](std::istringstream& f,
                                                         const std::string& line) {
    dgen::Params p;
    uint64_t offset, length;
    std::string want;
    ASSERT_TRUE(f >> p.content >> p.format_version >> p.seed >> p.size >> p.dedup_ratio >>
                p.compress_ratio >> p.dedup_unit >> p.dedup_run >> p.generation >>
                p.change_rate >> p.dedup_shift >> p.dedup_skew >> p.dedup_window >> offset >>
                length >> want) << line;
    std::vector<uint8_t> bytes(length);
    dgen::fill(dgen::Dataset(p), offset, bytes);
    EXPECT_EQ(sha256_hex(bytes.data(), bytes.size()), want) << "isa " << dgen::isa_name() << ": " << line;
  });
  EXPECT_GE(rows, 8);
}

TEST(Golden, IsaOverrideIsHonoured) {
  const char* want = std::getenv("DGEN_ISA");
  if (want && *want) {
    EXPECT_STREQ(dgen::isa_name(), want);
  } else {
    const char* best = dgen::kernels::usable("avx512") ? "avx512"
                       : dgen::kernels::usable("avx2") ? "avx2" : "scalar";
    EXPECT_STREQ(dgen::isa_name(), best);
  }
}

}  // namespace
