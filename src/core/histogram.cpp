#include "dgen/histogram.hpp"

#include <algorithm>
#include <cstring>

namespace dgen {

void add_byte_histogram(std::span<const uint8_t> data, std::array<uint64_t, 256>& counts) {
  // Eight tables, one per byte of a word: consecutive equal bytes (compressible data) would
  // otherwise make each increment wait for the previous one's store.
  constexpr size_t kBlock = size_t(1) << 29;  // a uint32_t count cannot overflow in a block
  uint32_t t[8][256];
  for (size_t start = 0; start < data.size(); start += kBlock) {
    const uint8_t* p = data.data() + start;
    const size_t n = std::min(kBlock, data.size() - start);
    std::memset(t, 0, sizeof t);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      for (int k = 0; k < 8; ++k) ++t[k][(w >> (8 * k)) & 255];
    }
    for (; i < n; ++i) ++t[0][p[i]];
    for (int b = 0; b < 256; ++b)
      for (int k = 0; k < 8; ++k) counts[b] += t[k][b];
  }
}

}  // namespace dgen
