// DGEN_ISA: ctest runs the suite once per path; a run for a path this CPU lacks is skipped.
#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "dgen/dgen.hpp"
#include "kernels/kernels.hpp"

namespace {

// Skips every test of a run whose DGEN_ISA names a SIMD path this build, CPU or OS cannot
// run (other values are left to fail: a typo must not pass as a skip).
class IsaEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* want = std::getenv("DGEN_ISA");
    const std::string w = want ? want : "";
    if ((w == "avx2" || w == "avx512") && !dgen::kernels::usable(w))
      // gtest prints no "[  SKIPPED ]" line per test for an environment's skip: this one is
      // what ctest's skip pattern (gtest_discover_tests) finds.
      GTEST_SKIP() << "[  SKIPPED ] DGEN_ISA=" << w << ": this build, CPU or OS has no " << w
                   << " path";
  }
};
[[maybe_unused]] const auto* const kIsaEnvironment =
    ::testing::AddGlobalTestEnvironment(new IsaEnvironment);

TEST(Isa, UsableNamesTheTablesByName) {
  EXPECT_STREQ(dgen::kernels::usable("scalar")->name, "scalar");
  for (const char* isa : {"avx2", "avx512"})
    if (const dgen::kernels::Table* t = dgen::kernels::usable(isa)) EXPECT_STREQ(t->name, isa);
  EXPECT_EQ(dgen::kernels::usable("AVX512"), nullptr);
  EXPECT_EQ(dgen::kernels::usable(""), nullptr);
}

TEST(Isa, Avx512IsUsableWhereTheCpuHasIt) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vl") ||
      !__builtin_cpu_supports("avx512dq"))
    GTEST_SKIP() << "this CPU has no AVX-512 F/BW/VL/DQ";
  ASSERT_NE(dgen::kernels::usable("avx512"), nullptr);
#else
  GTEST_SKIP() << "not x86-64";
#endif
}

}  // namespace
