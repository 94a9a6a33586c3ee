// Small datasets the model tests share: format 1 by unit size, format 2 with runs and
// generations, format 3 with a window.
#pragma once

#include <cstdint>

#include "dgen/dgen.hpp"

namespace {

inline dgen::Dataset dataset(uint64_t size, double dedup, uint64_t unit = 131072, uint64_t seed = 1) {
  return dgen::Dataset(dgen::Params{seed, size, dedup, 1.0, unit});
}

inline dgen::Dataset v2(uint64_t units, double dedup, uint64_t seed = 1) {
  return dgen::Dataset(dgen::Params{seed, units * 4096, dedup, 1.0, 4096, 2});
}

inline dgen::Dataset runs(uint64_t units, double dedup, uint64_t run, uint64_t seed = 1) {
  dgen::Params p{seed, units * 4096, dedup, 1.0, 4096, 2};
  p.dedup_run = run;
  return dgen::Dataset(p);
}

inline dgen::Dataset gen(uint64_t units, double dedup, uint64_t g, double c, uint64_t run = 1) {
  dgen::Params p{21, units * 4096, dedup, 1.0, 4096, 2};
  p.dedup_run = run;
  p.generation = g;
  p.change_rate = c;
  return dgen::Dataset(p);
}

inline dgen::Dataset v3(uint64_t units, double dedup, uint64_t window, uint64_t run = 1,
                 uint64_t seed = 1) {
  dgen::Params p{seed, units * 4096, dedup, 1.0, 4096, 3};
  p.dedup_run = run;
  p.dedup_window = window;
  return dgen::Dataset(p);
}

}  // namespace
