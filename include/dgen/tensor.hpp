// Numeric data: float32 values that are a pure function of (seed, element index), like the
// bytes of a dataset are of its identity and offset. Threads, chunking and the SIMD path
// never change them; docs/data-model.md ("Uniform float32") gives the format, which the
// golden vectors in tests/golden_uniform_v1.txt pin.
//
// Errors: std::invalid_argument naming the parameter, the value and the accepted range.
#pragma once

#include <cstdint>
#include <span>

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

}  // namespace dgen
