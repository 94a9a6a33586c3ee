// The SIMD kernel table. One file per ISA implements it (scalar.cpp is the reference);
// dispatch.cpp picks one at startup. Every implementation writes identical bytes.
#pragma once

#include <cstdint>

namespace dgen::kernels {

// One 4 KiB page: `random_len` bytes from the page's Xoshiro256++ lanes, then the filler.
struct PageSpec {
  uint64_t key;         // page key (docs/data-model.md)
  uint32_t random_len;  // 0..4096
};

struct Table {
  const char* name;
  // Writes the whole page to dst. With `stream`, non-temporal stores where dst allows.
  void (*page)(uint8_t* dst, const PageSpec& spec, bool stream);
  // Orders preceding non-temporal stores (sfence) — call once after a run of pages.
  void (*fence)();
};

const Table& scalar();
const Table* avx2();    // nullptr when not compiled in
const Table& active();  // chosen once: DGEN_ISA override, else the best the CPU supports

}  // namespace dgen::kernels
