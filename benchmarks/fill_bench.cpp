// Fill and verify a reused buffer beside memset and memcmp on the same threads, and each
// SIMD path's page and uniform kernels on one thread, in alternating rounds; print medians.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "../src/core/kernels/kernels.hpp"
#include "../src/core/pool.hpp"
#include "dgen/dgen.hpp"

namespace {

constexpr const char* kUsage =
    "usage: fill_bench [MiB[,MiB...]] [seconds] [threads]\n"
    "Fill reused buffers of MiB (default 2,32,256; each 1..1048576) with dgen::fill beside\n"
    "memset of a non-zero byte (the baseline; memset of 0, which some CPUs store faster, is\n"
    "its own row), verify beside memcmp, and the page (compress 1 and 2) and uniform float32\n"
    "kernels of every SIMD path here on one thread. Each row runs `seconds` (default 1, up\n"
    "to 3600) in 7 alternating rounds; fill, verify and memset/memcmp on `threads` (default\n"
    "1; 0: every available CPU). Prints median GB/s (min-max), the ratio to the baseline and\n"
    "CPU-seconds per TB.\n";
constexpr int kRounds = 7;

// argv[i] as a number in [lo, hi], or -1 when it is not one.
double number(const char* text, double lo, double hi) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  return (end != text && *end == '\0' && v >= lo && v <= hi) ? v : -1;
}

double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

struct Row {
  std::string name;
  std::function<void()> run;
  int baseline;  // the row this one is compared with; -1: none
  std::vector<double> gbps;
  double cpu = 0, bytes = 0;  // process CPU-seconds and bytes over every round
};

// One round of a row: calls for `seconds`, bytes each.
void round(Row& r, uint64_t bytes, double seconds) {
  using clock = std::chrono::steady_clock;
  uint64_t done = 0;
  const double c0 = cpu_seconds();
  const auto t0 = clock::now();
  double dt = 0;
  do {
    r.run();
    done += bytes;
    dt = std::chrono::duration<double>(clock::now() - t0).count();
  } while (dt < seconds);
  r.cpu += cpu_seconds() - c0;
  r.bytes += double(done);
  r.gbps.push_back(double(done) / dt / 1e9);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<uint64_t> parse_sizes(const char* text) {
  std::vector<uint64_t> out;
  std::string s(text);
  for (size_t at = 0; at <= s.size();) {
    const size_t comma = std::min(s.find(',', at), s.size());
    const std::string part = s.substr(at, comma - at);
    const double mib = number(part.c_str(), 1, 1 << 20);
    if (mib < 0 || mib != double(uint64_t(mib))) return {};
    out.push_back(uint64_t(mib));
    at = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"))) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const std::vector<uint64_t> sizes = argc > 1 ? parse_sizes(argv[1]) : std::vector<uint64_t>{2, 32, 256};
  const double secs = argc > 2 ? number(argv[2], 1e-3, 3600) : 1.0;
  const double thr = argc > 3 ? number(argv[3], 0, 4096) : 1;
  if (argc > 4 || sizes.empty() || secs < 0 || thr < 0 || thr != double(unsigned(thr))) {
    std::fprintf(stderr, "fill_bench: error: MiB must be integers in [1, 1048576] separated "
                 "by commas, seconds a number in [0.001, 3600] and threads an integer in "
                 "[0, 4096], got:");
    for (int i = 1; i < argc; ++i) std::fprintf(stderr, " %s", argv[i]);
    std::fprintf(stderr, "\n%s", kUsage);
    return 2;
  }
  const unsigned threads = thr == 0 ? dgen::available_cpus() : unsigned(thr);
  std::printf("isa=%s threads=%u rounds=%d; GB/s median (min-max); x base: median over the "
              "baseline's (memset(7), memcmp); cpu-s/TB: process CPU-seconds per 10^12 bytes\n",
              dgen::isa_name(), threads, kRounds);
  std::printf("%8s  %-24s %22s %8s %9s\n", "MiB", "case", "GB/s", "x base", "cpu-s/TB");
  for (const uint64_t mib : sizes) {
    const uint64_t size = mib << 20;
    auto* buf = static_cast<uint8_t*>(std::aligned_alloc(4096, size));
    auto* copy = static_cast<uint8_t*>(std::aligned_alloc(4096, size));
    if (!buf || !copy) {
      std::fprintf(stderr, "fill_bench: error: cannot allocate 2 x %llu MiB\n",
                   (unsigned long long)mib);
      return 1;
    }
    // Each thread memsets (memcmps) one contiguous share: glibc's fastest case.
    const uint64_t share = (size / threads + 4095) & ~uint64_t{4095};
    auto shares = [&](auto&& f) {
      dgen::pool::run(threads, threads, [&](size_t i) {
        const uint64_t lo = std::min(size, i * share);
        f(lo, std::min(share, size - lo));
      });
    };
    std::vector<Row> rows;
    rows.push_back({"memset(7) baseline", [&] { shares([&](uint64_t lo, uint64_t n) { std::memset(buf + lo, 7, n); }); }, -1});
    rows.push_back({"memset(0)", [&] { shares([&](uint64_t lo, uint64_t n) { std::memset(buf + lo, 0, n); }); }, 0});
    std::vector<dgen::Dataset> ds;
    for (double c : {1.0, 2.0}) ds.emplace_back(dgen::Params{1, size, c, c, dgen::kDefaultDedupUnit});
    for (size_t k = 0; k < ds.size(); ++k)
      rows.push_back({"fill compress " + std::to_string(k + 1) + " dedup " + std::to_string(k + 1),
                      [&, k] { dgen::fill(ds[k], 0, {buf, size}, {threads, 0}); }, 0});
    // The kernels on their own, one thread, every page from its own key; streaming as
    // fill() decides for a buffer of this size.
    std::vector<uint64_t> keys(size / 4096);
    for (size_t i = 0; i < keys.size(); ++i) keys[i] = 0x9E3779B97F4A7C15ull * (i + 1);
    const dgen::kernels::Stores stores = dgen::kernels::stores_for(size);
    const bool stream = stores == dgen::kernels::Stores::stream;
    const dgen::kernels::UniformScale unit{0.0f, 0x1p-24f, 1.0f, 0x1.fffffep-1f};
    for (const char* isa : {"avx2", "avx512"}) {
      const dgen::kernels::Table* t = dgen::kernels::usable(isa);
      if (!t) continue;
      for (uint32_t r : {4096u, 2048u})
        rows.push_back({std::string("pages ") + isa + " compress " + (r == 4096 ? "1" : "2"),
                        [=, &keys] {
                          t->pages(buf, keys.data(), keys.size(), r, stores);
                          if (stream) t->fence();
                        }, 0});
      rows.push_back({std::string("uniform f32 ") + isa, [=, &keys] {
                        t->uniform(reinterpret_cast<float*>(buf), keys.data(), keys.size(), unit, stores);
                        if (stream) t->fence();
                      }, 0});
    }
    const size_t memcmp_row = rows.size();
    rows.push_back({"memcmp baseline", [&] {
                      shares([&](uint64_t lo, uint64_t n) {
                        if (std::memcmp(buf + lo, copy + lo, n) != 0) std::abort();
                      });
                    }, -1});
    rows.push_back({"verify compress 2 dedup 2", [&] {
                      if (!dgen::verify(ds[1], 0, {buf, size}, {threads, 0}).ok()) std::abort();
                    }, int(memcmp_row)});
    // Warm-up (page faults, thread start), then the rounds; memcmp and verify compare the
    // dataset's own bytes.
    for (Row& r : rows) {
      if (r.name.starts_with("memcmp")) {
        dgen::fill(ds[1], 0, {buf, size}, {threads, 0});
        std::memcpy(copy, buf, size);
      }
      r.run();
    }
    dgen::fill(ds[1], 0, {buf, size}, {threads, 0});
    std::memcpy(copy, buf, size);
    for (int k = 0; k < kRounds; ++k)
      for (size_t i = 0; i < rows.size(); ++i) {
        if (i == memcmp_row) {  // the rows before rewrote buf
          dgen::fill(ds[1], 0, {buf, size}, {threads, 0});
        }
        round(rows[i], size, secs / kRounds);
      }
    for (const Row& r : rows) {
      const double m = median(r.gbps);
      char cell[64], ratio[16] = "";
      std::snprintf(cell, sizeof cell, "%7.2f (%.2f-%.2f)", m,
                    *std::min_element(r.gbps.begin(), r.gbps.end()),
                    *std::max_element(r.gbps.begin(), r.gbps.end()));
      if (r.baseline >= 0) std::snprintf(ratio, sizeof ratio, "%.3f", m / median(rows[r.baseline].gbps));
      std::printf("%8llu  %-24s %22s %8s %9.1f\n", (unsigned long long)mib, r.name.c_str(), cell,
                  ratio, r.cpu / r.bytes * 1e12);
    }
    std::free(buf);
    std::free(copy);
  }
}
