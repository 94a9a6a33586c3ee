// Internal pieces shared by fill() and verify().
#pragma once

#include <cstdint>
#include <functional>

#include "dgen/dgen.hpp"

namespace dgen::detail {

// Single-threaded: writes bytes [offset, offset + len) of the dataset to out.
void fill_range(const Dataset& ds, uint64_t offset, uint8_t* out, uint64_t len, bool stream);

// Throws std::out_of_range unless [offset, offset + len) lies inside the dataset.
void check_range(const Dataset& ds, uint64_t offset, uint64_t len);

// Splits [offset, offset + len) at absolute multiples of the block size and runs
// work(lo, hi) for each piece on the pool, honouring opt.threads and opt.interrupted.
void for_each_block(uint64_t offset, uint64_t len, const FillOptions& opt,
                    const std::function<void(uint64_t lo, uint64_t hi)>& work);

}  // namespace dgen::detail
