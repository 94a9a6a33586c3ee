// Numeric data: float32 values that are a pure function of (seed, element index), like the
// bytes of a dataset are of its identity and offset. Threads, chunking and the SIMD path
// never change them; docs/data-model.md ("Uniform float32") gives the format, which the
// golden vectors in tests/golden_uniform_v1.txt pin.
//
// Errors: std::invalid_argument naming the parameter, the value and the accepted range.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "dgen/dgen.hpp"

namespace dgen {

// Values per keyed block: element i comes from block i / kUniformBlock.
inline constexpr uint64_t kUniformBlock = 1024;

// Writes values [first, first + out.size()) of the uniform float32 stream of `seed` to
// `out`, every one in [low, high). low and high must be finite, low < high, and high - low
// must be finite in float32.
void uniform_f32(uint64_t seed, uint64_t first, std::span<float> out, float low, float high,
                 const FillOptions& opt = {});

// Scales each row of `dim` values in place to unit L2 norm: x * (1 / sqrt(s)) in double,
// rounded to float32, where s is the row's sum of squares in double (eight partial sums,
// element j into sum j % 8, added pairwise). A row whose s is zero, infinite or NaN is left
// as it is. dim must be >= 1 and divide out.size().
void normalize_rows(std::span<float> data, uint64_t dim, const FillOptions& opt = {});

// uniform_f32(seed, 0, out, low, high) and then, with `normalize`, normalize_rows(out, dim),
// a few rows at a time while they are in cache.
void uniform_vectors(uint64_t seed, std::span<float> out, uint64_t dim, float low, float high,
                     bool normalize, const FillOptions& opt = {});

// Typed tensors (docs/data-model.md, "Typed tensors (version 1)"): element i of a fill is
// a pure function of (seed, dtype, distribution and its parameters, i).
enum class Dtype : uint8_t { f16, bf16, f32, f64, i8, i16, i32, i64, u8, u16, u32, u64 };
enum class Dist : uint8_t { uniform, normal, integers, zipf };

inline constexpr size_t element_size(Dtype d) {
  switch (d) {
    case Dtype::i8: case Dtype::u8: return 1;
    case Dtype::f16: case Dtype::bf16: case Dtype::i16: case Dtype::u16: return 2;
    case Dtype::f32: case Dtype::i32: case Dtype::u32: return 4;
    default: return 8;
  }
}
inline constexpr bool is_float(Dtype d) { return d <= Dtype::f64; }

// "float16", "bfloat16", "float32", "float64", "int8" .. "int64", "uint8" .. "uint64";
// throws std::invalid_argument naming them for anything else.
Dtype parse_dtype(std::string_view name);
std::string_view dtype_name(Dtype d);

struct TensorParams {
  Dist dist = Dist::uniform;
  // uniform (float dtypes): [low, high), both finite; at least one value of the dtype
  // must lie in it.
  double low = 0, high = 1;
  // normal (float dtypes): mean + std * N(0, 1), both finite, std >= 0, and |mean| + 6.77
  // std at most the dtype's largest finite value (so every value is finite).
  double mean = 0, std = 1;
  // integers and zipf (integer dtypes): values first + k for k in [0, count), with first
  // as the dtype's value in two's complement and count 0 meaning 2^64; every value must
  // fit the dtype. zipf: k + 1 has probability about proportional to (k + 1)^-exponent,
  // exponent in (0, 100], count at most 2^53.
  uint64_t first = 0, count = 0;
  double exponent = 1;
};

// Writes elements [first_element, first_element + out.size() / element_size(dtype)) of the
// tensor stream (seed, dtype, params) to out, little-endian (bfloat16 as its 16 bits;
// dgen_py.fill_tensor swaps them for an array of the other byte order).
// out.size() must be a multiple of the element size; out needs no particular alignment.
void fill_tensor(uint64_t seed, uint64_t first_element, Dtype dtype, const TensorParams& params,
                 std::span<uint8_t> out, const FillOptions& opt = {});

// normalize_rows for float64 rows: the same sums, the scale rounded to float64.
void normalize_rows(std::span<double> data, uint64_t dim, const FillOptions& opt = {});

}  // namespace dgen
