// Fill a reused buffer with dgen::fill and with memset on the same threads; print GB/s and
// the ratio.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dgen/dgen.hpp"
#include "../src/core/pool.hpp"

namespace {

constexpr const char* kUsage =
    "usage: fill_bench [MiB] [seconds]\n"
    "Fill a reused buffer of MiB (default 32, 1..1048576) with dgen::fill and with memset\n"
    "on the same threads (every available CPU, then 1), for seconds (default 1, up to 3600)\n"
    "per case; print GB/s and fill/memset for (compress, dedup) = (1, 1) and (2, 2).\n";

// argv[i] as a number in [lo, hi], or -1 when it is not one.
double number(const char* text, double lo, double hi) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  return (end != text && *end == '\0' && v >= lo && v <= hi) ? v : -1;
}

template <class F>
double gbps(uint64_t bytes, double seconds, F&& f) {
  using clock = std::chrono::steady_clock;
  f();  // warm-up: page faults, thread start
  uint64_t done = 0;
  const auto t0 = clock::now();
  double dt = 0;
  do {
    f();
    done += bytes;
    dt = std::chrono::duration<double>(clock::now() - t0).count();
  } while (dt < seconds);
  return double(done) / dt / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"))) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const double mib = argc > 1 ? number(argv[1], 1, 1 << 20) : 32;
  const double secs = argc > 2 ? number(argv[2], 1e-3, 3600) : 1.0;
  if (argc > 3 || mib < 0 || mib != uint64_t(mib) || secs < 0) {
    std::fprintf(stderr, "fill_bench: error: MiB must be an integer in [1, 1048576] and "
                 "seconds a number in [0.001, 3600], got:");
    for (int i = 1; i < argc; ++i) std::fprintf(stderr, " %s", argv[i]);
    std::fprintf(stderr, "\n%s", kUsage);
    return 2;
  }
  const uint64_t size = uint64_t(mib) << 20;
  auto* buf = static_cast<uint8_t*>(std::aligned_alloc(4096, size));
  if (!buf) {
    std::fprintf(stderr, "fill_bench: error: cannot allocate %.0f MiB\n", mib);
    return 1;
  }
  std::printf("isa=%s buffer=%llu MiB\n", dgen::isa_name(), (unsigned long long)(size >> 20));
  std::printf("%-8s %-9s %-7s %10s %10s %7s\n", "threads", "compress", "dedup", "fill GB/s",
              "memset", "ratio");
  for (unsigned threads : {dgen::available_cpus(), 1u}) {
    // Baseline: each thread memsets one contiguous share (glibc's fastest case).
    const double mem = gbps(size, secs, [&] {
      const uint64_t share = (size / threads + 4095) & ~uint64_t{4095};
      dgen::pool::run(threads, threads, [&](size_t i) {
        const uint64_t lo = std::min(size, i * share), len = std::min(share, size - lo);
        std::memset(buf + lo, int(i + 1), len);
      });
    });
    for (auto [c, d] : {std::pair{1.0, 1.0}, std::pair{2.0, 2.0}}) {
      dgen::Dataset ds(dgen::Params{1, size, d, c, dgen::kDefaultDedupUnit});
      const double g = gbps(size, secs, [&] { dgen::fill(ds, 0, {buf, size}, {threads, 0}); });
      std::printf("%-8u %-9g %-7g %10.2f %10.2f %7.3f\n", threads, c, d, g, mem, g / mem);
    }
  }
  std::free(buf);
}
