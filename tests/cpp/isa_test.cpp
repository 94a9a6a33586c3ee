// DGEN_ISA and set_isa(): ctest runs the suite once per path; a run for a path this CPU
// lacks is skipped.
#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

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

// set_isa() changes a process-wide choice: each test puts the path it found back.
struct RestoreIsa {
  std::string was = dgen::isa_name();
  ~RestoreIsa() { dgen::set_isa(was); }
};

TEST(SetIsa, ChoosesEveryUsablePathByName) {
  RestoreIsa restore;
  for (const char* isa : {"scalar", "avx2", "avx512"}) {
    if (!dgen::kernels::usable(isa)) continue;
    dgen::set_isa(isa);
    EXPECT_STREQ(dgen::isa_name(), isa);
  }
}

TEST(SetIsa, EveryPathMakesTheSameBytes) {
  RestoreIsa restore;
  dgen::Params p;
  p.seed = 7;
  p.size = 4 << 20;
  p.dedup_ratio = 2.5;
  p.compress_ratio = 3;
  dgen::set_isa("scalar");
  std::vector<uint8_t> want(p.size);
  dgen::fill(dgen::Dataset(p), 0, want);
  for (const char* isa : {"avx2", "avx512"}) {
    if (!dgen::kernels::usable(isa)) continue;
    dgen::set_isa(isa);
    std::vector<uint8_t> got(p.size);
    dgen::fill(dgen::Dataset(p), 0, got);
    EXPECT_TRUE(got == want) << isa;
  }
}

TEST(SetIsa, RefusesAnUnknownNameNamingItAndTheAcceptedOnes) {
  RestoreIsa restore;
  const std::string before = dgen::isa_name();
  for (const char* bad : {"avx3", "AVX2", "", "neon"}) {
    try {
      dgen::set_isa(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("isa must be one of scalar, avx2, avx512"), std::string::npos) << m;
      EXPECT_NE(m.find("got '" + std::string(bad) + "'"), std::string::npos) << m;
    }
    EXPECT_EQ(dgen::isa_name(), before) << "a refused name changed the path";
  }
}

TEST(SetIsa, RefusesAPathThisCpuCannotRunSayingSo) {
  RestoreIsa restore;
  bool tried = false;
  for (const char* isa : {"avx2", "avx512"}) {
    if (dgen::kernels::usable(isa)) continue;
    tried = true;
    try {
      dgen::set_isa(isa);
      ADD_FAILURE() << "accepted " << isa;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("not usable here: "), std::string::npos) << e.what();
    }
  }
  if (!tried) GTEST_SKIP() << "every path is usable here";
}

}  // namespace
