// The parts of Dataset that only the core reads: the caches its loops keep between calls on
// consecutive units, its private helpers and their types. Not installed (dgen.hpp
// forward-declares what it names).
#pragma once

#include <cstdint>
#include <vector>

#include "dgen/dgen.hpp"

namespace dgen {

// The versions of the runs of two windows (a window's units also show the last run of the
// one before), kept between calls on consecutive units. Valid for one Dataset only.
struct VersionCache {
  struct Window {
    uint64_t generation = 0, first = 0, count = 0;
    uint32_t version[kWindowUnits];
  } windows[2];
  unsigned next = 0;    // the one to replace
  uint64_t ahead = 0;   // the latest window tabulated: runs born well before it go alone
  struct Alone {        // those runs' versions (dedup_skew repeats a few of them often),
    uint64_t run = ~0ull, generation = 0, version = 0;  // at run mod kAlone
  };
  static constexpr unsigned kAlone = 64;
  Alone alone[kAlone];
};

// Format 2: the layout of the window a caller is in (its keyed slot orders) and the run it
// looked up last, kept between calls on consecutive units. Valid for one Dataset only.
struct SlotCache {
  uint64_t window = ~0ull;
  uint8_t diagonal[8] = {}, column[8] = {};  // the first `side` of each are used
  uint64_t first = 0, upto = 0;  // unique_before() at the window's ends
  double zipf_base = 0, zipf_span = 0;  // dedup_skew: the window's law (model.cpp)
  uint64_t before[kWindowUnits + 1];  // unique_before() at its slots, ~0 until needed
  uint64_t run = ~0ull, slot = 0, id = 0;
  bool born = false;  // the run's slot is its id's first
};

// Format 2 generations: the window where run r was born, runs [first, end).
struct Dataset::BirthWindow {
  uint64_t index, first, end;
};
inline constexpr uint64_t kChangeGroup = 16;  // format 3: births per group of changes

// Format 2, dedup_skew with generations: the versions of the runs born in the first
// kEarlyWindows windows, where most hot units of a Zipf law are, made with the dataset (a
// one-time cost of about kEarlyWindows windows' tables, a fraction of a millisecond).
// Not on first use under a lock: a fork while another thread made it left that lock
// taken for good in the child (the fork protocol: src/core/pool.cpp).
inline constexpr uint64_t kEarlyWindows = 64;
struct Dataset::Early {
  std::vector<uint32_t> version;
};

// Dataset's private helpers (a nested type, so they read its private fields).
struct Dataset::Detail {
  // Format 2: the slot run `run_index` shows, the id there and whether it is born there.
  static const SlotCache& locate(const Dataset& d, uint64_t run_index, SlotCache& cache);
  static uint64_t slot_id(const Dataset& d, uint64_t slot, const SlotCache& window);
  static uint64_t distinct_runs(const Dataset& d, uint64_t run_count);  // among the first ones
  static BirthWindow birth_window(const Dataset& d, uint64_t run);  // where run was born
  static uint64_t floor_quotient(const Dataset& d, uint64_t n, double add);  // n / ratio + add
  static uint64_t changes(const Dataset& d, const BirthWindow& bw);  // each rewrite's, there
  static uint64_t change_key(const Dataset& d, uint64_t h, uint64_t window);  // h's choice
  static void make_early(Dataset& d);
};

}  // namespace dgen
