// Content profiles on their own (src/core/content.hpp): write their bytes, or time them
// against memset on one thread.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "../src/core/content.hpp"
#include "dgen/dgen.hpp"
#include "../src/core/model.hpp"

namespace {

constexpr const char* kUsage =
    "usage: content_bench PROFILE RATIO BYTES [FORMAT]   write BYTES of content to stdout\n"
    "       content_bench PROFILE @LEVEL BYTES [FORMAT]  the same at a model level (0..255)\n"
    "       content_bench speed [MiB] [seconds] [FORMAT]\n"
    "PROFILE is binary or text; FORMAT the format version whose pages they are (1 to 5,\n"
    "default 5). The pages are those of unit 0 of seed 1 onwards (unit key\n"
    "mix64(1 + phi * (unit + 1)), 128 KiB units). speed fills a reused buffer of MiB\n"
    "(default 8) with each profile (at two ratios) and with memset of a non-zero byte on one\n"
    "thread, in alternating rounds for seconds (default 1) of its CPU time in all, and prints\n"
    "the fastest round's GB per CPU-second and its ratio to memset's.\n";

using dgen::content::Kind;

std::vector<uint64_t> keys(size_t pages) {
  std::vector<uint64_t> k(pages);
  for (size_t i = 0; i < pages; ++i) {
    const uint64_t unit = dgen::model::mix64(1 + dgen::model::kGolden * (i / 32 + 1));
    k[i] = dgen::model::page_key(unit, i % 32);
  }
  return k;
}

// This thread's CPU seconds: on a shared machine, time spent waiting for a core is not
// counted (wall time there once read half the speed).
double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// CPU seconds of f's fastest run: the fastest run is the one least disturbed.
template <class F>
double best(F&& f, double& so_far) {
  const double t0 = cpu_seconds();
  f();
  const double dt = cpu_seconds() - t0;
  so_far = so_far > 0 && so_far < dt ? so_far : dt;
  return dt;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const dgen::kernels::Table& k = dgen::kernels::active();
  if (!std::strcmp(argv[1], "speed")) {
    const double mib = argc > 2 ? std::atof(argv[2]) : 8;
    const double secs = argc > 3 ? std::atof(argv[3]) : 1;
    const int format = argc > 4 ? std::atoi(argv[4]) : dgen::kMaxFormatVersion;
    if (!(mib >= 1 && mib <= 4096) || !(secs > 0 && secs <= 3600) ||
        format < dgen::kMinFormatVersion || format > dgen::kMaxFormatVersion) {
      std::fputs(kUsage, stderr);
      return 2;
    }
    const size_t pages = size_t(mib * 256);
    std::vector<uint8_t> buf(pages * 4096);
    const std::vector<uint64_t> ks = keys(pages);
    struct Case {
      const char* label;
      dgen::content::Model m;
      double t = 0;
    };
    using dgen::content::model_for;
    const int v = dgen::content::version_of_format(format);
    Case cases[] = {{"binary 2", model_for(Kind::binary, 2, v)},
                    {"binary 2.9", model_for(Kind::binary, 2.9, v)},
                    {"text 2", model_for(Kind::text, 2, v)},
                    {"text 4.5", model_for(Kind::text, 4.5, v)}};
    double mem = 0, spent = 0;
    // Rounds alternate memset and every case until `secs` have passed.
    while (spent < secs) {
      spent += best([&] { std::memset(buf.data(), 0x5A, buf.size()); }, mem);
      for (Case& c : cases)
        spent += best([&] { dgen::content::pages(buf.data(), ks.data(), pages, c.m, k); }, c.t);
    }
    const double n = double(buf.size());
    std::printf("%s path, %.0f MiB buffer, format %d, one thread, fastest of alternating "
                "rounds, GB per CPU-second\n",
                k.name, mib, format);
    std::printf("memset of 0x5A   %6.2f GB/s\n", n / mem / 1e9);
    for (const Case& c : cases)
      std::printf("%-10s level %3d  %6.2f GB/s  %.3f of memset\n", c.label, c.m.level,
                  n / c.t / 1e9, mem / c.t);
    return 0;
  }
  Kind kind;
  const int format = argc == 5 ? std::atoi(argv[4]) : dgen::kMaxFormatVersion;
  if ((argc != 4 && argc != 5) || !dgen::content::parse(argv[1], kind) || kind == Kind::flat ||
      format < dgen::kMinFormatVersion || format > dgen::kMaxFormatVersion) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const int version = dgen::content::version_of_format(format);
  const dgen::content::Model m =
      argv[2][0] == '@' ? dgen::content::model_at(kind, std::atoi(argv[2] + 1), version)
                        : dgen::content::model_for(kind, std::atof(argv[2]), version);
  const size_t bytes = std::strtoull(argv[3], nullptr, 10);
  const size_t pages = (bytes + 4095) / 4096;
  std::vector<uint8_t> buf(pages * 4096);
  const std::vector<uint64_t> ks = keys(pages);
  dgen::content::pages(buf.data(), ks.data(), pages, m, k);
  std::fwrite(buf.data(), 1, bytes, stdout);
  return 0;
}
