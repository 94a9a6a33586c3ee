// Internal pieces shared by fill() and verify().
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "dgen/dgen.hpp"
#include "kernels/kernels.hpp"

namespace dgen::detail {

// Single-threaded: writes bytes [offset, offset + len) of the dataset to out, flat pages
// stored as `stores` says (kernels::stores_for() or cached_stores() of the whole
// destination, which may be more than this range).
void fill_range(const Dataset& ds, uint64_t offset, uint8_t* out, uint64_t len,
                kernels::Stores stores);

// Single-threaded: whether data holds bytes [offset, offset + len) of the dataset, compared
// as they are made (no copy); nullopt where the range holds a shifted copy of a run
// (dedup_shift), which only fill_range() makes. `paired`: the whole data compared is within
// kernels::kPairedLimit.
std::optional<bool> equal_range(const Dataset& ds, uint64_t offset, const uint8_t* data,
                                uint64_t len, bool paired);

// Throws std::out_of_range unless [offset, offset + len) lies inside the dataset.
void check_range(const Dataset& ds, uint64_t offset, uint64_t len);

// Splits [offset, offset + len) at absolute multiples of the block size and runs
// work(lo, hi) for each piece on the pool, honouring opt.threads and opt.interrupted.
void for_each_block(uint64_t offset, uint64_t len, const FillOptions& opt,
                    const std::function<void(uint64_t lo, uint64_t hi)>& work);

}  // namespace dgen::detail
