// The SIMD kernel table. One file per ISA implements it (scalar.cpp is the reference);
// dispatch.cpp picks one at startup. Every implementation writes identical bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dgen/tensor.hpp"

namespace dgen::kernels {

// Values per uniform block: 4 KiB of random words, one float32 from each 32-bit word.
inline constexpr size_t kUniformBlock = 1024;

// The map of uniform() from random words to [low, high) (uniform.hpp).
struct UniformScale {
  float low;
  float step;        // (high - low) / 2^24, the distance between neighbouring values
  float high;
  float below_high;  // the largest float32 below high
};

// What typed() makes (typed.hpp; docs/data-model.md, "Typed tensors"). Integers are
// first + an offset below count (count 0: 2^64), wrapping in 64 bits and stored in the
// dtype's width; floats are stored as their bits.
struct TypedSpec {
  Dtype dtype;
  Dist dist;
  UniformScale f;             // uniform, 32-bit floats: the float32 value of uniform.hpp,
  float clamp_lo, clamp_hi;   // then clamped to the dtype's values in [low, high) (for
                              // float32, [low, below_high]: no clamp at all)
  double low, step, high, below_high;  // uniform float64: low + (x >> 12) * step
  double mean, std;                    // normal
  uint64_t first, count;               // integers and zipf
  double c0, c1, inv_t;                // zipf: rank from exp(log(c0 + u c1) inv_t) or,
  bool log_form;                       // without log_form, exp(c0 + u c1)
};

// Random words per element: 64-bit words for 8-byte dtypes, normal and zipf.
inline constexpr size_t words_per_element(const TypedSpec& t) {
  return element_size(t.dtype) == 8 || t.dist == Dist::normal || t.dist == Dist::zipf ? 2 : 1;
}
// Elements per typed block: one 4 KiB page of random words.
inline constexpr size_t block_elements(const TypedSpec& t) {
  return 1024 / words_per_element(t);
}

// How pages() stores (stores_for() picks by the destination's size).
enum class Stores : uint8_t {
  plain,   // plain stores, a page at a time
  paired,  // plain stores, two pages at a time where the path can (AVX-512: two independent
           // chains keep its vector units busy); past the TLB's reach, two store streams run
           // slower than one
  stream,  // non-temporal stores where dst allows
};

struct Table {
  const char* name;
  // Writes `count` consecutive 4 KiB pages to dst: page i from keys[i] (docs/data-model.md),
  // `random_len` (0..4096) bytes from its Xoshiro256++ lanes, then the filler, stored as
  // `stores` says. Every choice writes the same bytes.
  void (*pages)(uint8_t* dst, const uint64_t* keys, size_t count, uint32_t random_len,
                Stores stores);
  // Orders preceding non-temporal stores (sfence) — call once after a run of pages.
  void (*fence)();
  // Writes `count` blocks of kUniformBlock float32 values in [low, high) to dst: block i
  // from the words of the page pages() makes from keys[i] with random_len 4096, each
  // little-endian 32-bit word one value (uniform.hpp), stored as `stores` says (streaming:
  // then fence()).
  void (*uniform)(float* dst, const uint64_t* keys, size_t count, const UniformScale& s,
                  Stores stores);
  // Writes `count` typed blocks (block_elements(t) elements each, element_size(t.dtype)
  // bytes per element) to dst: block i from the page of random length 4096 made from
  // keys[i], stored as `stores` says (streaming: then fence()).
  void (*typed)(uint8_t* dst, const uint64_t* keys, size_t count, const TypedSpec& t,
                Stores stores);
  // Copies n bytes of a ring of ring_size bytes to dst, starting at `start` (< ring_size)
  // and wrapping to its beginning, with non-temporal stores where dst allows (fence()
  // after the run): rotated pages of dedup_shift's copies, streaming. The ring's first
  // kRingPad bytes are repeated after its end.
  void (*ring_copy)(uint8_t* dst, const uint8_t* ring, size_t ring_size, size_t start,
                    size_t n);
  // Writes bytes [skip, skip + n) of the pages keys[0..count) laid end to end (skip + n <=
  // 4096 * count) to dst, with non-temporal stores on dst's 32-byte grid, plain ones only
  // for bytes off its 16-byte grid (fence() after the run): dedup_shift's copies of runs
  // of pages, streaming.
  void (*shifted)(uint8_t* dst, const uint64_t* keys, size_t count, size_t skip, size_t n,
                  uint32_t random_len);
  // Whether data (any alignment) holds the `count` pages pages() would write from keys:
  // verify's common case, compared as they are made where the path can; `paired` as for
  // Stores::paired (the data being read within the TLB's reach).
  bool (*equal)(const uint8_t* data, const uint64_t* keys, size_t count, uint32_t random_len,
                bool paired);
};

inline constexpr size_t kRingPad = 32;

// From this many bytes per fill() call on, pages go out with non-temporal stores: the data
// would not stay in cache anyway, and skipping the read-for-ownership saves bandwidth. The
// last-level cache's size, at most 32 MiB (8 MiB where unknown): below it plain stores are faster (Zen 4,
// one thread: 34-39 GB/s plain against 25 streaming at 8 MiB), above it streaming is.
uint64_t stream_threshold();

// Destinations (or verified data) up to this size go two pages at a time. Zen 4, one thread,
// 4 KiB pages: pairs fill 2-8 MiB at 1.10x, 14 MiB at 0.85x, 24 MiB at 0.7x a page at a
// time (its second-level TLB holds 12 MiB of them).
inline constexpr uint64_t kPairedLimit = uint64_t{8} << 20;

// Cached stores for a destination of `bytes` that a fill writes (and may write again: a
// buffer reused): paired up to kPairedLimit, else plain.
inline Stores cached_stores(uint64_t bytes) {
  return bytes <= kPairedLimit ? Stores::paired : Stores::plain;
}
// The same, and stream from stream_threshold() on.
inline Stores stores_for(uint64_t bytes) {
  return bytes < stream_threshold() ? cached_stores(bytes) : Stores::stream;
}

const Table& scalar();
const Table* avx2();    // nullptr when not compiled in
const Table* avx512();  // nullptr when not compiled in
// The table named scalar, avx2 or avx512 if this build, CPU and OS can run it, else nullptr.
const Table* usable(std::string_view isa);
// The table in use: the one select() chose, else (chosen at first use) DGEN_ISA's, else the
// best the CPU supports. Throws std::invalid_argument for a DGEN_ISA naming no path usable
// here (and again at every call until select() or a good DGEN_ISA).
const Table& active();
// Makes the table named isa the one in use (dgen::set_isa). Throws std::invalid_argument,
// naming `param`, the value and the accepted names, where usable(isa) is nullptr.
void select(std::string_view isa, const char* param);

}  // namespace dgen::kernels
