// Fill a reused buffer with dgen::fill and with memset on the same threads; print GB/s and
// the ratio. Usage: fill_bench [MiB=32] [seconds-per-case=1]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dgen/dgen.hpp"
#include "../src/core/pool.hpp"

namespace {

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
  const uint64_t size = (argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 32) << 20;
  const double secs = argc > 2 ? std::atof(argv[2]) : 1.0;
  auto* buf = static_cast<uint8_t*>(std::aligned_alloc(4096, size));
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
