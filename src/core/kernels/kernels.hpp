// The SIMD kernel table. One file per ISA implements it (scalar.cpp is the reference);
// dispatch.cpp picks one at startup. Every implementation writes identical bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dgen::kernels {

struct Table {
  const char* name;
  // Writes `count` consecutive 4 KiB pages to dst: page i from keys[i] (docs/data-model.md),
  // `random_len` (0..4096) bytes from its Xoshiro256++ lanes, then the filler. With
  // `stream`, non-temporal stores where dst allows.
  void (*pages)(uint8_t* dst, const uint64_t* keys, size_t count, uint32_t random_len,
                bool stream);
  // Orders preceding non-temporal stores (sfence) — call once after a run of pages.
  void (*fence)();
};

const Table& scalar();
const Table* avx2();    // nullptr when not compiled in
// Chosen once: DGEN_ISA override, else the best the CPU supports. Throws
// std::invalid_argument for a DGEN_ISA naming no path usable here.
const Table& active();

}  // namespace dgen::kernels
