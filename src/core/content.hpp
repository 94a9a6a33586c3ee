// Content profiles (docs/data-model.md, "Content profiles"): 4 KiB
// pages of LZ-structured bytes that compress like real files. A page is a function of its
// page key only: its 4096 random bytes (the page of random length 4096 that every kernel
// makes identically) feed its literals, and a scalar generator seeded by the key draws its
// tokens. One implementation of the token logic serves every ISA, so every path writes the
// same bytes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.hpp"

namespace dgen::content {

enum class Kind : uint8_t { flat = 0, binary = 1, text = 2 };

// "flat", "binary", "text"; nullptr for anything else.
const char* name(Kind k);
// The kind named `s`; false when it names none.
bool parse(const char* s, Kind& out);

// Levels of compressibility: 0 is the least compressible, kLevels - 1 the most.
inline constexpr int kLevels = 256;

// Versions of the profiles' pages: 1 in formats 1 to 3, 2 (made for bzip2 and xz too:
// docs/data-model.md, "Version 2") in format 4, 3 (text made of words; binary as in 2:
// "Version 3") from format 5 on.
inline constexpr int kVersions = 3;
inline constexpr int version_of_format(int format_version) {
  return format_version >= 5 ? 3 : format_version == 4 ? 2 : 1;
}

// What a dataset's pages of one profile need: the profile, its version and the level that
// gives the requested compress_ratio (the calibration tables in calibration.cpp).
struct Model {
  Kind kind = Kind::flat;
  int level = 0;
  int version = 1;
};

// The model whose pages measure `compress_ratio` with zstd -3 over 1 MiB frames (kind
// binary or text; compress_ratio >= 1; version 1 to 3).
Model model_for(Kind kind, double compress_ratio, int version);
// The model at an explicit level (calibration and tests).
Model model_at(Kind kind, int level, int version);
// The ratio zstd -3 measures over 1 MiB frames of m's pages, from the calibration: the
// request where the profile reaches it (model_for), else the nearest it reaches.
double calibrated_ratio(const Model& m);

// Writes `count` 4 KiB pages to dst, page i from keys[i], with the kernel table k making
// the random bytes (any table: all make the same).
void pages(uint8_t* dst, const uint64_t* keys, size_t count, const Model& m,
           const kernels::Table& k);

}  // namespace dgen::content
