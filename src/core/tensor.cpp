// Numeric data (dgen/tensor.hpp): keyed blocks of random words, turned into floats.
#include "dgen/tensor.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "blocks.hpp"
#include "kernels/kernels.hpp"
#include "text.hpp"
#include "kernels/typed.hpp"
#include "model.hpp"

namespace dgen {
namespace {

static_assert(kUniformBlock == kernels::kUniformBlock);

// Keeps the uniform stream of a seed apart from the datasets and other streams of that seed.
constexpr uint64_t kUniformDomain = 0x756E69666F726D31ull;  // "uniform1"
// Elements handed to a worker at once (1 MiB of float32).
constexpr uint64_t kWorkElements = 256 * 1024;

kernels::UniformScale scale_for(float low, float high) {
  const float span = high - low;
  if (!std::isfinite(low) || !std::isfinite(high) || !(low < high) || !std::isfinite(span))
    throw std::invalid_argument("low and high must be finite with low < high and high - low "
                                "at most 3.4e38 (float32), got low=" + num(low) + ", high=" +
                                num(high));
  return {low, span * 0x1p-24f, high,
          std::nextafter(high, -std::numeric_limits<float>::infinity())};
}

// Single-threaded: elements [first, first + n) of the typed stream keyed `key` into out.
void typed_range(uint64_t key, uint64_t first, uint8_t* out, uint64_t n,
                 const kernels::TypedSpec& t, kernels::Stores stores) {
  constexpr uint64_t kRun = 32;  // blocks handed to the kernel at once
  const kernels::Table& k = kernels::active();
  const uint64_t per_block = kernels::block_elements(t), width = element_size(t.dtype);
  uint64_t keys[kRun];
  while (n > 0) {
    const uint64_t block = first / per_block, skip = first % per_block;
    if (skip == 0 && n >= per_block) {  // whole blocks, straight to `out`
      const uint64_t blocks = std::min(kRun, n / per_block);
      for (uint64_t i = 0; i < blocks; ++i) keys[i] = model::page_key(key, block + i);
      k.typed(out, keys, blocks, t, stores);
      first += blocks * per_block;
      out += blocks * per_block * width;
      n -= blocks * per_block;
      continue;
    }
    // A block cut by the range: make all of it, keep the part asked for.
    alignas(64) uint8_t buf[4096];
    keys[0] = model::page_key(key, block);
    k.typed(buf, keys, 1, t, kernels::Stores::paired);
    const uint64_t m = std::min(n, per_block - skip);
    std::memcpy(out, buf + skip * width, m * width);
    first += m;
    out += m * width;
    n -= m;
  }
}

kernels::TypedSpec float32_uniform(float low, float high) {
  kernels::TypedSpec t{};
  t.dtype = Dtype::f32;
  t.dist = Dist::uniform;
  t.f = scale_for(low, high);
  t.clamp_lo = low;
  t.clamp_hi = t.f.below_high;
  return t;
}

template <class T>
void normalize_range(T* data, uint64_t rows, uint64_t dim) {
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
    for (j = 0; j < dim; ++j) data[j] = T(double(data[j]) * inv);
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

constexpr Dtype kDtypes[] = {Dtype::f16, Dtype::bf16, Dtype::f32, Dtype::f64,
                             Dtype::i8,  Dtype::i16,  Dtype::i32, Dtype::i64,
                             Dtype::u8,  Dtype::u16,  Dtype::u32, Dtype::u64};
constexpr std::string_view kDtypeNames[] = {"float16", "bfloat16", "float32", "float64",
                                            "int8",    "int16",    "int32",   "int64",
                                            "uint8",   "uint16",   "uint32",  "uint64"};

// Keeps the streams of each distribution (and word size) apart; the narrow uniform
// stream is generate_uniform's.
uint64_t domain(const kernels::TypedSpec& t) {
  switch (t.dist) {
    case Dist::uniform:
      return kernels::words_per_element(t) == 1 ? kUniformDomain
                                                : 0x756E69666F726D38ull;  // "uniform8"
    case Dist::normal: return 0x6E6F726D616C3031ull;                    // "normal01"
    case Dist::integers:
      return kernels::words_per_element(t) == 1 ? 0x696E746567657234ull   // "integer4"
                                                : 0x696E746567657238ull;  // "integer8"
    case Dist::zipf: return 0x7A697066616E3031ull;                       // "zipfan01"
  }
  return 0;
}

// The value of float16 or bfloat16 bits h, and the neighbouring bits above and below.
float small_float(Dtype d, uint16_t h) {
  if (d == Dtype::bf16) return std::bit_cast<float>(uint32_t(h) << 16);
  const int e = (h >> 10) & 31, m = h & 1023;
  const float v = e == 31 ? std::numeric_limits<float>::infinity()
                  : e == 0 ? std::ldexp(float(m), -24)
                           : std::ldexp(float(1024 + m), e - 25);
  return h & 0x8000 ? -v : v;
}
uint16_t step_up(uint16_t h) { return h == 0x8000 ? 1 : h & 0x8000 ? h - 1 : h + 1; }
uint16_t step_down(uint16_t h) { return h == 0 ? 0x8001 : h & 0x8000 ? h + 1 : h - 1; }

// The largest finite value of a float dtype.
double largest_finite(Dtype dtype) {
  switch (dtype) {
    case Dtype::f16: return 65504.0;
    case Dtype::bf16: return 0x1.FEp127;
    case Dtype::f32: return std::numeric_limits<float>::max();
    default: return std::numeric_limits<double>::max();
  }
}

std::string range_text(double low, double high) {
  return "low=" + num(low) + ", high=" + num(high);
}

kernels::TypedSpec spec_for(Dtype dtype, const TensorParams& p) {
  kernels::TypedSpec t{};
  t.dtype = dtype;
  t.dist = p.dist;
  const std::string name(dtype_name(dtype));
  const bool floating = is_float(dtype);
  if (floating != (p.dist == Dist::uniform || p.dist == Dist::normal))
    throw std::invalid_argument(
        "dist must be " + std::string(floating ? "uniform or normal for " : "integers or zipf for ") +
        name);
  if (p.dist == Dist::uniform && dtype == Dtype::f64) {
    const double span = p.high - p.low;
    if (!std::isfinite(p.low) || !std::isfinite(p.high) || !(p.low < p.high) ||
        !std::isfinite(span))
      throw std::invalid_argument("low and high must be finite with low < high and high - low "
                                  "finite, got " + range_text(p.low, p.high));
    t.low = p.low;
    t.step = span * 0x1p-52;
    t.high = p.high;
    t.below_high = std::nextafter(p.high, -std::numeric_limits<double>::infinity());
  } else if (p.dist == Dist::uniform) {
    const float low = float(p.low), high = float(p.high);
    t.f = scale_for(low, high);
    t.clamp_lo = low;
    t.clamp_hi = t.f.below_high;
    if (dtype != Dtype::f32) {  // the dtype's values nearest inside [low, high)
      auto bits = [&](float v) {
        return dtype == Dtype::f16 ? kernels::half_bits(v) : kernels::bfloat_bits(v);
      };
      uint16_t lo = bits(low), hi = bits(high);
      if (small_float(dtype, lo) < low) lo = step_up(lo);
      while (small_float(dtype, hi) >= high) hi = step_down(hi);
      t.clamp_lo = small_float(dtype, lo);
      t.clamp_hi = small_float(dtype, hi);
      if (!(t.clamp_lo <= t.clamp_hi) || std::isinf(t.clamp_lo) || std::isinf(t.clamp_hi))
        throw std::invalid_argument("no " + name + " value lies in [low, high), got " +
                                    range_text(p.low, p.high));
    }
  } else if (p.dist == Dist::normal) {
    if (!std::isfinite(p.mean) || !std::isfinite(p.std) || !(p.std >= 0))
      throw std::invalid_argument("mean and std must be finite and std >= 0, got mean=" +
                                  num(p.mean) + ", std=" + num(p.std));
    // Every value finite, as uniform's range is: |z| never exceeds kernels::kMaxNormal.
    const double largest = largest_finite(dtype);
    if (!(std::abs(p.mean) + kernels::kMaxNormal * p.std <= largest))
      throw std::invalid_argument(
          "mean and std must keep every value in " + name + "'s range: |mean| + " +
          num(kernels::kMaxNormal) + " * std must be at most " + num(largest) + ", got mean=" +
          num(p.mean) + ", std=" + num(p.std));
    t.mean = p.mean;
    t.std = p.std;
  } else {
    const size_t bits = 8 * element_size(dtype);
    const bool is_signed = dtype >= Dtype::i8 && dtype <= Dtype::i64;
    // The dtype's values as [min, max] in 128 bits, and the range asked for.
    const __int128 min = is_signed ? -(__int128(1) << (bits - 1)) : 0;
    const __int128 max = (is_signed ? __int128(1) << (bits - 1) : __int128(1) << bits) - 1;
    const __int128 lo = is_signed ? __int128(int64_t(p.first)) : __int128(p.first);
    const __int128 n = p.count == 0 ? __int128(1) << 64 : __int128(p.count);
    if (lo < min || lo + n - 1 > max)
      throw std::invalid_argument("integers [first, first + count) must fit " + name +
                                  ", got first=" + (is_signed ? std::to_string(int64_t(p.first))
                                                           : std::to_string(p.first)) +
                                  ", count=" + (p.count ? std::to_string(p.count) : "2^64"));
    t.first = p.first;
    t.count = p.count;
    if (p.dist == Dist::zipf) {
      if (p.count == 0 || p.count > (uint64_t(1) << 53))
        throw std::invalid_argument("zipf count must be in [1, 2^53], got " +
                                    (p.count ? std::to_string(p.count) : "2^64"));
      if (!(p.exponent > 0 && p.exponent <= 100))
        throw std::invalid_argument("zipf exponent must be in (0, 100], got " +
                                    num(p.exponent));
      // Ranks: the density x^-s on [1/2, count + 1/2), inverted, rounded to nearest.
      const double a = kernels::log_d(0.5), b = kernels::log_d(double(p.count) + 0.5);
      if (p.exponent == 1) {
        t.c0 = a;
        t.c1 = b - a;
      } else {
        const double e = 1 - p.exponent;
        t.c0 = kernels::exp_d(e * a);
        t.c1 = kernels::exp_d(e * b) - t.c0;
        t.inv_t = 1 / e;
        t.log_form = true;
      }
    }
  }
  return t;
}

// The typed stream of (seed, t) from element `first` into out, on the pool.
void fill_range(uint64_t seed, uint64_t first, const kernels::TypedSpec& t, uint8_t* out,
                uint64_t n, const FillOptions& opt) {
  if (first > UINT64_MAX - n)
    throw std::out_of_range("elements [" + std::to_string(first) + ", +" + std::to_string(n) +
                            ") run past element 2^64 - 1");
  const uint64_t key = model::mix64(seed ^ domain(t)), width = element_size(t.dtype);
  const kernels::Stores stores = kernels::stores_for(n * width);
  FillOptions o = opt;
  o.block_size = kWorkElements;  // element counts here, not bytes
  detail::for_each_block(first, n, o, [&](uint64_t lo, uint64_t hi) {
    typed_range(key, lo, out + (lo - first) * width, hi - lo, t, stores);
  });
}

}  // namespace

Dtype parse_dtype(std::string_view name) {
  for (size_t i = 0; i < std::size(kDtypes); ++i)
    if (kDtypeNames[i] == name) return kDtypes[i];
  throw std::invalid_argument("dtype must be one of float16, bfloat16, float32, float64, "
                              "int8, int16, int32, int64, uint8, uint16, uint32, uint64; got '" +
                              std::string(name) + "'");
}

std::string_view dtype_name(Dtype d) { return kDtypeNames[size_t(d)]; }

void fill_tensor(uint64_t seed, uint64_t first_element, Dtype dtype, const TensorParams& params,
                 std::span<uint8_t> out, const FillOptions& opt) {
  const kernels::TypedSpec t = spec_for(dtype, params);
  const uint64_t width = element_size(dtype);
  if (out.size() % width != 0)
    throw std::invalid_argument("out must hold whole " + std::string(dtype_name(dtype)) +
                                " elements (" + std::to_string(width) + " bytes), got " +
                                std::to_string(out.size()) + " bytes");
  if (reinterpret_cast<uintptr_t>(out.data()) % width != 0)
    throw std::invalid_argument("out must start on a " + std::to_string(width) +
                                "-byte boundary, as " + std::string(dtype_name(dtype)) +
                                " elements do");
  fill_range(seed, first_element, t, out.data(), out.size() / width, opt);
}

void uniform_f32(uint64_t seed, uint64_t first, std::span<float> out, float low, float high,
                 const FillOptions& opt) {
  fill_range(seed, first, float32_uniform(low, high), reinterpret_cast<uint8_t*>(out.data()),
             out.size(), opt);
}

void normalize_rows(std::span<float> data, uint64_t dim, const FillOptions& opt) {
  check_dim(data.size(), dim);
  detail::for_each_block(0, data.size() / dim, by_rows(opt, dim), [&](uint64_t lo, uint64_t hi) {
    normalize_range(data.data() + lo * dim, hi - lo, dim);
  });
}

void normalize_rows(std::span<double> data, uint64_t dim, const FillOptions& opt) {
  check_dim(data.size(), dim);
  detail::for_each_block(0, data.size() / dim, by_rows(opt, dim), [&](uint64_t lo, uint64_t hi) {
    normalize_range(data.data() + lo * dim, hi - lo, dim);
  });
}

void uniform_vectors(uint64_t seed, std::span<float> out, uint64_t dim, float low, float high,
                     bool normalize, const FillOptions& opt) {
  check_dim(out.size(), dim);
  if (!normalize) return uniform_f32(seed, 0, out, low, high, opt);
  const kernels::TypedSpec t = float32_uniform(low, high);
  const uint64_t key = model::mix64(seed ^ kUniformDomain);
  detail::for_each_block(0, out.size() / dim, by_rows(opt, dim), [&](uint64_t lo, uint64_t hi) {
    float* rows = out.data() + lo * dim;
    typed_range(key, lo * dim, reinterpret_cast<uint8_t*>(rows), (hi - lo) * dim, t,
                kernels::cached_stores(out.size() * sizeof(float)));
    normalize_range(rows, hi - lo, dim);
  });
}

}  // namespace dgen
