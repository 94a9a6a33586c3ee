// Numeric data (dgen/tensor.hpp): keyed blocks of random words, turned into floats.
#include "dgen/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "blocks.hpp"
#include "kernels/kernels.hpp"
#include "model.hpp"

namespace dgen {
namespace {

static_assert(kUniformBlock == kernels::kUniformBlock);

// Keeps the uniform stream of a seed apart from the datasets and other streams of that seed.
constexpr uint64_t kUniformDomain = 0x756E69666F726D31ull;  // "uniform1"
// Elements handed to a worker at once (1 MiB of float32).
constexpr uint64_t kWorkElements = 256 * 1024;
// Above this many elements per call, values go out with non-temporal stores.
constexpr uint64_t kStreamElements = 2ull << 20;

kernels::UniformScale scale_for(float low, float high) {
  const float span = high - low;
  if (!std::isfinite(low) || !std::isfinite(high) || !(low < high) || !std::isfinite(span))
    throw std::invalid_argument("low and high must be finite with low < high and high - low "
                                "at most 3.4e38 (float32), got low=" + std::to_string(low) +
                                ", high=" + std::to_string(high));
  return {low, span * 0x1p-24f, high,
          std::nextafter(high, -std::numeric_limits<float>::infinity())};
}

// Single-threaded: values [first, first + n) of the stream keyed `key` into out.
void uniform_range(uint64_t key, uint64_t first, float* out, uint64_t n,
                   const kernels::UniformScale& s, bool stream) {
  constexpr uint64_t kRun = 32;  // blocks handed to the kernel at once
  const kernels::Table& k = kernels::active();
  uint64_t keys[kRun];
  bool streamed = false;
  while (n > 0) {
    const uint64_t block = first / kUniformBlock, skip = first % kUniformBlock;
    if (skip == 0 && n >= kUniformBlock) {  // whole blocks, straight to `out`
      const uint64_t blocks = std::min(kRun, n / kUniformBlock);
      for (uint64_t i = 0; i < blocks; ++i) keys[i] = model::page_key(key, block + i);
      k.uniform(out, keys, blocks, s, stream);
      streamed |= stream;
      first += blocks * kUniformBlock;
      out += blocks * kUniformBlock;
      n -= blocks * kUniformBlock;
      continue;
    }
    // A block cut by the range: make all of it, keep the part asked for.
    alignas(64) float buf[kUniformBlock];
    keys[0] = model::page_key(key, block);
    k.uniform(buf, keys, 1, s, false);
    const uint64_t m = std::min(n, kUniformBlock - skip);
    std::memcpy(out, buf + skip, 4 * m);
    first += m;
    out += m;
    n -= m;
  }
  if (streamed) k.fence();
}

void normalize_range(float* data, uint64_t rows, uint64_t dim) {
  for (uint64_t r = 0; r < rows; ++r, data += dim) {
    double acc[8] = {};
    uint64_t j = 0;
    for (; j + 8 <= dim; j += 8)
      for (int l = 0; l < 8; ++l) acc[l] += double(data[j + l]) * double(data[j + l]);
    for (int l = 0; j < dim; ++j, ++l) acc[l] += double(data[j]) * double(data[j]);
    const double sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
                       ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    if (!(sum > 0) || std::isinf(sum)) continue;  // zero, NaN or infinite: left as it is
    const double inv = 1.0 / std::sqrt(sum);
    for (j = 0; j < dim; ++j) data[j] = float(double(data[j]) * inv);
  }
}

// Rows per worker hand-off: about kWorkElements values, at least one row.
FillOptions by_rows(const FillOptions& opt, uint64_t dim) {
  FillOptions o = opt;
  o.block_size = std::max<uint64_t>(1, kWorkElements / dim);
  return o;
}

void check_dim(uint64_t size, uint64_t dim) {
  if (dim == 0 || size % dim != 0)
    throw std::invalid_argument("dim must be >= 1 and divide the " + std::to_string(size) +
                                " values, got " + std::to_string(dim));
}

}  // namespace

void uniform_f32(uint64_t seed, uint64_t first, std::span<float> out, float low, float high,
                 const FillOptions& opt) {
  const kernels::UniformScale s = scale_for(low, high);
  const uint64_t n = out.size();
  if (first > UINT64_MAX - n)
    throw std::out_of_range("values [" + std::to_string(first) + ", +" + std::to_string(n) +
                            ") run past element 2^64 - 1");
  const uint64_t key = model::mix64(seed ^ kUniformDomain);
  const bool stream = n >= kStreamElements;
  FillOptions o = opt;
  o.block_size = kWorkElements;  // element counts here, not bytes
  detail::for_each_block(first, n, o, [&](uint64_t lo, uint64_t hi) {
    uniform_range(key, lo, out.data() + (lo - first), hi - lo, s, stream);
  });
}

void normalize_rows(std::span<float> data, uint64_t dim, const FillOptions& opt) {
  check_dim(data.size(), dim);
  detail::for_each_block(0, data.size() / dim, by_rows(opt, dim), [&](uint64_t lo, uint64_t hi) {
    normalize_range(data.data() + lo * dim, hi - lo, dim);
  });
}

void uniform_vectors(uint64_t seed, std::span<float> out, uint64_t dim, float low, float high,
                     bool normalize, const FillOptions& opt) {
  check_dim(out.size(), dim);
  if (!normalize) return uniform_f32(seed, 0, out, low, high, opt);
  const kernels::UniformScale s = scale_for(low, high);
  const uint64_t key = model::mix64(seed ^ kUniformDomain);
  detail::for_each_block(0, out.size() / dim, by_rows(opt, dim), [&](uint64_t lo, uint64_t hi) {
    float* rows = out.data() + lo * dim;
    uniform_range(key, lo * dim, rows, (hi - lo) * dim, s, false);
    normalize_range(rows, hi - lo, dim);
  });
}

}  // namespace dgen
