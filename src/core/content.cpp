// Content profiles: see content.hpp and docs/data-model.md, "Content profiles".
#include "content.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace dgen::content {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kSlack = 128;     // a token writes up to 127 bytes past the page end
constexpr size_t kDictSize = 1 << 15;  // bytes of a profile's shared dictionary
constexpr size_t kFarSize = 1 << 20;   // bytes of its rare dictionary
constexpr size_t kSlots = 8192;        // word-text strings a page's literal slots copy

// A page is a run of tokens, each a literal run (0..32 of the page's literal bytes at the
// same position) then a copy (1..64 bytes) of one kind. Each part copies 32 (64) bytes and
// keeps its length, so longer runs and matches are several tokens in a row (a match at
// the last distance continues one). No branch depends on the random bits.
enum Copy {
  kMatch,  // earlier bytes of the page at a new distance (32..4095)
  kRep,    // earlier bytes at the last distance: continues a match, or repeats one
  kDict,   // a short string of the profile's dictionary (shared by all pages)
  kShort,  // 3 or 4 earlier bytes at a new distance: too short for the fast match finders
  kNear,   // 2 or 3 bytes at the last distance: what optimal parsers (xz) find in tables
  kRun,    // one byte repeated
  kRaw,    // the page's random bytes at the same position (incompressible)
  kFar,    // a string of the profile's large rare dictionary: repeats far apart, which only
           // the deep match finders (zstd -19, xz) keep in view
  kCopies
};

// Literal bytes from random words, 8 at a time: with a = the word, b and c = a rotated,
// bit i of every byte is 1 with probability 1/8 (and3), 1/4 (and2), 1/2 (one) or 3/4
// (or2), else it is `set`. Rotating by a multiple of 8 makes a byte share random bits with
// a neighbour (the order-1 flavour real literals have, which xz and bzip2 model and zstd
// and lz4 do not).
struct Literals {
  uint8_t and3, and2, one, or2, set;
};
constexpr int kRotB = 8, kRotC = 16;

// A profile at one compressibility: the weights of the copy kinds and the literal run's
// mean length.
struct Anchor {
  double copy[kCopies];
  double literal_mean;
};

struct Spec {
  Literals lit;
  uint8_t run_bytes[4];
  double copy_mean[kCopies];  // mean copy lengths (geometric, copy_min..64)
  uint8_t copy_min[kCopies];
  Anchor anchors[4];          // at levels 0, 85, 170, 255
  // A page's level is offset by spread[3 key bits], so regions differ; kSparse instead
  // makes it a sparse page (mostly runs, as padding and tables are), at levels from
  // sparse_from up.
  int16_t spread[8];
  int sparse_from;
  Anchor sparse;
  int dict_bits;  // the dictionary used: its first 2^dict_bits bytes (at most 15)
  int far_bits;   // the rare dictionary used: its first 2^far_bits bytes (at most 20)
  // A page's dictionary strings come from a window of 2^window_bits bytes of it at a keyed
  // offset (0: from all of it), as a file uses some of a language's words, often.
  int window_bits;
  // Literal runs that are the bytes at the last distance with a bit in 16 flipped, this
  // many in 256: what LZMA codes against its match byte (machine code differs from code
  // before it in a register or an offset).
  int matched_literals;
  // Words (0: none): literals and both dictionaries made of a vocabulary of 2^words words
  // (see Words below). The share of literal slots that are words grows from 0 at level
  // words_from to all at words_full: words in low levels' literals let lz4 find nearly
  // what zstd -3 finds (0.83 of its ratio at 1.5; real files keep below 0.8).
  int words, words_from, words_full;
};
constexpr int16_t kSparse = 999;

//                 match rep  dict short near run  raw  far
constexpr Spec kBinary = {
    {0xF0, 0x0E, 0x01, 0x00, 0x00},
    {0x00, 0x00, 0xFF, 0xCC},
    {20, 16, 20, 3.5, 2.5, 48, 48, 16},
    {1, 1, 6, 3, 2, 8, 8, 8},
    {{{0.5, 0.2, 0.5, 0.3, 0.3, 0.0, 8, 0}, 2},
     {{0.2, 0.1, 0.2, 1.0, 1.5, 0.02, 0.15, 0.1}, 14},
     {{1.5, 1.0, 0.8, 0.5, 1.0, 0.3, 0.1, 0.5}, 2},
     {{0.3, 12.0, 0.2, 0.0, 0.0, 4.0, 0.0, 0}, 0.1}},
    {-24, -12, -4, 0, 0, 8, 24, kSparse},
    100,
    {{0.0, 0.2, 0.2, 0.0, 0, 3.0, 0, 0}, 1.0},
    13,
    17,
    0,
    0,
    0,
    0,
    0,
};

constexpr Spec kText = {
    {0x00, 0x1F, 0x00, 0x40, 0x20},
    {' ', ' ', ' ', '-'},
    {20, 16, 20, 3.5, 2.5, 12, 48, 16},
    {1, 1, 6, 3, 2, 4, 8, 8},
    {{{0.5, 0.2, 0.5, 0.3, 0.3, 0.0, 8, 0}, 2},
     {{0.2, 0.1, 0.2, 1.0, 1.5, 0.02, 0.15, 0.1}, 14},
     {{3.0, 1.0, 2.0, 0.3, 0.0, 0.3, 0.0, 0}, 2.5},
     {{0.3, 12.0, 0.2, 0.0, 0.0, 4.0, 0.0, 0}, 0.1}},
    {-24, -12, -4, 0, 0, 8, 16, 32},
    999,
    {{0.2, 0.2, 0.2, 0.0, 0, 3.0, 0, 0}, 2},
    13,
    17,
    0,
    0,
    0,
    0,
    0,
};

// Version 2 (format 4): version 1 with what bzip2 and xz find in real files, material
// repeated across pages with steady statistics as a language's words are (the dictionary
// copied more often and in longer strings), and for binary, code that differs from the
// code before it in a register or an offset (matched literals). docs/data-model.md,
// "Content profiles".
constexpr Spec kBinary2 = [] {
  Spec s = kBinary;
  s.copy_mean[kMatch] = 12;
  s.copy_mean[kDict] = 48;
  s.anchors[2].copy[kDict] = 2.5;
  s.matched_literals = 160;
  return s;
}();

constexpr Spec kText2 = [] {
  Spec s = kText;
  s.copy_mean[kDict] = 60;
  s.anchors[2].copy[kMatch] = 1.5;
  s.anchors[2].copy[kDict] = 4.0;
  s.anchors[2].copy[kFar] = 0.5;
  s.spread[6] = 32;
  s.spread[7] = 64;
  s.window_bits = 9;
  return s;
}();

// Version 3 of text (format 5): version 2 made of words, as source is: short contexts
// that predict the next byte (what bzip2 and the order-1 models see) and repeats of
// words rather than long exact copies.
constexpr Spec kText3 = [] {
  Spec s = kText2;
  s.words = 8;
  s.words_from = 40;
  s.words_full = 160;
  // Level 85 gains by literals more, by matches and the dictionary less (lz4 and zstd
  // both find those): below the corpus's ratios lz4 stays below 0.8 of zstd -3.
  s.anchors[1].copy[kMatch] = 0.05;
  s.anchors[1].copy[kDict] = 0.05;
  s.anchors[1].literal_mean = 24;
  return s;
}();
static_assert(kText3.words <= 8, "Words holds at most 256 words");

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

inline uint64_t bytes8(uint8_t b) { return 0x0101010101010101ull * b; }

// 8 literal bytes from a random word.
inline uint64_t literal_word(uint64_t a, const Literals& l) {
  const uint64_t b = rotl(a, kRotB), c = rotl(a, kRotC);
  return (a & b & c & bytes8(l.and3)) | (a & b & bytes8(l.and2)) | (a & bytes8(l.one)) |
         ((a | b) & bytes8(l.or2)) | bytes8(l.set);
}

// The page's literal bytes from its random bytes. The AVX-512 clone rotates with one
// instruction (AVX2 has none); all write the same bytes. Called from pages(), not from
// page(): inside page()'s AVX2 clone, GCC would call this one's AVX2 clone.
#ifndef __SANITIZE_THREAD__
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void literal_bytes(uint64_t* lit, const uint64_t* random, Literals l) {
  for (size_t i = 0; i < kPage / 8; ++i) lit[i] = literal_word(random[i], l);
}

typedef uint8_t Slot __attribute__((vector_size(16)));

// 16-byte slots of the page's literal bytes as the profile's words (Profile::slots), `share`
// of 256: slot k where the page's random byte 512 + k is below it, the string that its
// random bytes 2k and 2k + 1 pick, x skewed to the first by x * x. Blended, not branched:
// a branch on random bits mispredicts half the time.
void word_literals(uint8_t* lit, const uint8_t* random, const Slot* slots, int share) {
  const auto pick = [&](size_t k) {
    const uint32_t x = random[2 * k] | uint32_t{random[2 * k + 1]} << 8;
    return slots[(x * x) >> 19];
  };
  if (share == 256) {  // every slot: the other literal bytes were not made
    for (size_t k = 0; k < kPage / 16; ++k) {
      const Slot v = pick(k);
      std::memcpy(lit + 16 * k, &v, 16);
    }
    return;
  }
  for (size_t k = 0; k < kPage / 16; ++k) {
    const uint8_t all = random[512 + k] < share ? 0xFF : 0;
    const Slot take = Slot{} + all;
    Slot v;
    std::memcpy(&v, lit + 16 * k, 16);
    v = (pick(k) & take) | (v & ~take);
    std::memcpy(lit + 16 * k, &v, 16);
  }
}

// New match distances by 8 random bits: floor(2^(5 + 7 u^2)) for u = (i + 0.5) / 256, from
// 32 to 3913, the short ones most often (written out: no libm in the bytes).
constexpr uint16_t kDistances[256] = {
    32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32,
    32, 32, 32, 32, 33, 33, 33, 33, 33, 33, 33, 33, 33, 34, 34, 34,
    34, 34, 34, 35, 35, 35, 35, 35, 36, 36, 36, 36, 37, 37, 37, 37,
    38, 38, 38, 38, 39, 39, 39, 40, 40, 40, 41, 41, 41, 42, 42, 43,
    43, 43, 44, 44, 45, 45, 46, 46, 47, 47, 48, 48, 49, 49, 50, 51,
    51, 52, 52, 53, 54, 54, 55, 56, 57, 57, 58, 59, 60, 61, 61, 62,
    63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 74, 75, 76, 77, 79, 80,
    81, 83, 84, 85, 87, 88, 90, 92, 93, 95, 97, 98, 100, 102, 104, 106,
    108, 110, 112, 115, 117, 119, 122, 124, 127, 129, 132, 135, 137, 140, 143, 146,
    150, 153, 156, 160, 163, 167, 171, 175, 179, 183, 187, 191, 196, 200, 205, 210,
    215, 220, 226, 231, 237, 243, 249, 255, 261, 268, 275, 282, 289, 297, 304, 312,
    321, 329, 338, 347, 357, 366, 376, 387, 397, 408, 420, 432, 444, 456, 469, 483,
    497, 511, 526, 542, 558, 574, 591, 609, 627, 646, 666, 686, 707, 729, 752, 775,
    799, 824, 850, 877, 905, 934, 965, 996, 1028, 1062, 1097, 1133, 1170, 1209, 1250, 1292,
    1335, 1380, 1427, 1476, 1527, 1580, 1634, 1691, 1750, 1812, 1876, 1942, 2011, 2083, 2158, 2236,
    2316, 2401, 2488, 2579, 2674, 2773, 2876, 2983, 3095, 3211, 3332, 3458, 3590, 3727, 3870, 4019};

// SplitMix64 over a counter: the constant-seeded source of the profile tables.
struct Mix {
  uint64_t x;
  uint64_t next() {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

// The tables a profile's pages are made from, built once from its Spec.
struct Profile {
  alignas(64) uint8_t dict[kDictSize + kSlack];
  alignas(64) uint8_t far[kFarSize + kSlack];
  alignas(64) uint8_t runs[4][64];
  uint8_t copy_len[kCopies][32];  // copy lengths (1..64) by 5 random bits
  uint16_t distance[256];         // new match distances by 8 random bits
  struct Level {
    uint8_t copy[64];             // copy kinds by 6 random bits
    uint8_t literal_len[32];      // literal run lengths by 5 random bits
  } levels[kLevels + 1];  // the last: sparse pages
  Literals lit;
  int16_t spread[8];
  int sparse_from;
  int dict_shift;  // a dictionary offset is (x * x) >> dict_shift, x 16 random bits
  size_t window_mask;  // a page's dictionary window starts at its key's bits 24.. & this
  size_t far_mask;  // a rare dictionary offset is (16 x) & far_mask
  int matched_literals;  // Spec::matched_literals
  // Words: a page's literal bytes are 16-byte slots, each one of these: the 16 bytes of a
  // text of words at its first kSlots word starts, picked skewed to the first (as a file
  // uses some words often).
  bool word_literals;
  int words_from, words_full;  // Spec::words_from, words_full
  Slot slots[kSlots];
};

// 32 lengths in lo..hi of a geometric variable of the mean (lo + floor(log(1 - u) /
// log(1 - p)), p = 1 / (mean - lo + 1), at u = (i + 0.5) / 32), by walking its tail
// q^n: multiplications and comparisons only, so every platform builds the same table.
void lengths(uint8_t (&out)[32], double mean, int lo, int hi) {
  const double q = 1 - 1.0 / std::max(mean - lo + 1, 1.0000001);
  double tail = q;  // P(X > k)
  int k = lo;
  for (int i = 0; i < 32; ++i) {
    const double u = (i + 0.5) / 32;
    while (k < hi && 1 - tail < u) {
      tail *= q;
      ++k;
    }
    out[i] = uint8_t(k);
  }
}

// Words (text version 3): a vocabulary of 2^bits words of 2 to 9 letters, each letter after
// the first one of 16 successors of the letter before (an order-1 chain, as the letters of
// a language follow each other), and texts of them: words drawn by a skewed draw (the
// first words most often), each followed by a separator (a space 10 times in 16).
class Words {
 public:
  Words(int bits, const Literals& lit, Mix& mix) : bits_(bits) {
    uint8_t next[256][16];  // the successors of each letter
    for (auto& row : next)
      for (size_t j = 0; j < 16; j += 8) {
        const uint64_t v = literal_word(mix.next(), lit);
        std::memcpy(row + j, &v, 8);
        for (size_t k = j; k < j + 8; ++k)
          if (row[k] == ' ') row[k] = 'e';  // a space ends a word: never inside one
      }
    for (size_t w = 0; w < (size_t{1} << bits); ++w) {
      const uint64_t first = literal_word(mix.next(), lit), r = mix.next();
      uint8_t c = uint8_t(first) == ' ' ? 'e' : uint8_t(first);
      len_[w] = uint8_t(2 + r % 8);
      for (size_t k = 0; k < len_[w]; ++k) {
        word_[w][k] = c;
        c = next[c][(r >> (8 + 4 * k)) & 15];
      }
    }
  }
  // n bytes of words and separators into out; each word's start into starts (up to
  // max_starts of them) when given. Returns the number of starts written.
  size_t text(uint8_t* out, size_t n, Mix& mix, uint32_t* starts = nullptr,
              size_t max_starts = 0) const {
    static constexpr uint8_t kSeparators[16] = {' ', ' ',  ' ', ' ', ' ', ' ', ' ', ' ',
                                                ' ', ' ', '\n', '(', '.', ',', ':', '_'};
    size_t i = 0, found = 0;
    while (i < n) {
      const uint64_t x = mix.next() & 0xFFFF;
      const size_t w = (x * x) >> (32 - bits_);
      if (found < max_starts) starts[found++] = uint32_t(i);
      for (size_t k = 0; k < len_[w] && i < n; ++k) out[i++] = word_[w][k];
      if (i < n) out[i++] = kSeparators[(x >> 3) & 15];
    }
    return found;
  }

 private:
  int bits_;
  uint8_t word_[256][9];
  uint8_t len_[256];
};

Profile* build(const Spec& s, uint64_t seed) {
  Profile* p = new Profile{};
  Mix mix{seed};
  p->lit = s.lit;
  if (s.words) {
    const Words words(s.words, s.lit, mix);
    words.text(p->dict, kDictSize + kSlack, mix);
    words.text(p->far, kFarSize + kSlack, mix);
    std::vector<uint8_t> text(1 << 16);
    std::vector<uint32_t> starts(kSlots);
    // A constant text: the check fails only if the construction changes.
    if (words.text(text.data(), text.size(), mix, starts.data(), kSlots) < kSlots ||
        starts.back() + 16 > text.size())
      std::abort();
    for (size_t i = 0; i < kSlots; ++i) std::memcpy(&p->slots[i], &text[starts[i]], 16);
    p->word_literals = true;
    p->words_from = s.words_from;
    p->words_full = s.words_full;
  } else {
    for (size_t i = 0; i < kDictSize + kSlack; i += 8) {
      const uint64_t v = literal_word(mix.next(), s.lit);
      std::memcpy(p->dict + i, &v, 8);
    }
    for (size_t i = 0; i < kFarSize + kSlack; i += 8) {
      const uint64_t v = literal_word(mix.next(), s.lit);
      std::memcpy(p->far + i, &v, 8);
    }
  }
  for (int r = 0; r < 4; ++r) std::memset(p->runs[r], s.run_bytes[r], 64);
  for (int t = 0; t < kCopies; ++t) {
    const bool short_kind = t == kShort || t == kNear;  // their length is min or min + 1
    lengths(p->copy_len[t], s.copy_mean[t], s.copy_min[t], short_kind ? s.copy_min[t] + 1 : 64);
  }
  std::memcpy(p->distance, kDistances, sizeof kDistances);
  for (int l = 0; l <= kLevels; ++l) {
    const double x = double(l) / (kLevels - 1) * 3;  // 0..3 over the four anchors
    const int a = std::min(int(x), 2);
    const double f = l == kLevels ? 0 : x - a;
    const Anchor& lo = l == kLevels ? s.sparse : s.anchors[a];
    const Anchor& hi = l == kLevels ? s.sparse : s.anchors[a + 1];
    // Each anchor's weights as shares, then mixed.
    double slo = 0, shi = 0, w[kCopies], sum = 0;
    for (int t = 0; t < kCopies; ++t) slo += lo.copy[t], shi += hi.copy[t];
    for (int t = 0; t < kCopies; ++t)
      sum += w[t] = lo.copy[t] / slo * (1 - f) + hi.copy[t] / shi * f;
    int t = 0;
    double c = w[0] / sum;
    for (int i = 0; i < 64; ++i) {
      while (t < kCopies - 1 && (i + 0.5) / 64 > c) c += w[++t] / sum;
      p->levels[l].copy[i] = uint8_t(t);
    }
    lengths(p->levels[l].literal_len, lo.literal_mean * (1 - f) + hi.literal_mean * f, 0, 32);
  }
  p->sparse_from = s.sparse_from;
  p->matched_literals = s.matched_literals;
  p->dict_shift = 32 - (s.window_bits ? s.window_bits : s.dict_bits);
  p->window_mask = s.window_bits
                       ? ((size_t{1} << s.dict_bits) - (size_t{1} << s.window_bits)) & ~size_t{15}
                       : 0;
  p->far_mask = ((size_t{1} << s.far_bits) - 1) & ~size_t{15};
  std::memcpy(p->spread, s.spread, sizeof p->spread);
  return p;
}

// Each built on first use (2 MiB of tables apiece).
const Profile& profile(Kind k, int version) {
  if (version >= 3 && k == Kind::text) {  // binary's version 3 is its version 2
    static const Profile* text3 = build(kText3, 0x74657874ull);
    return *text3;
  }
  if (version >= 2) {
    if (k == Kind::text) {
      static const Profile* text2 = build(kText2, 0x74657874ull);
      return *text2;
    }
    static const Profile* binary2 = build(kBinary2, 0x62696E617279ull);
    return *binary2;
  }
  if (k == Kind::text) {
    static const Profile* text = build(kText, 0x74657874ull);
    return *text;
  }
  static const Profile* binary = build(kBinary, 0x62696E617279ull);
  return *binary;
}

// The token source: wyrand (a 64-bit multiply per word, two tokens), seeded by the key.
struct Wy {
  uint64_t x;
  uint64_t next() {
    x += 0xA0761D6478BD642Full;
    const unsigned __int128 m = (unsigned __int128)x * (x ^ 0xE7037ED1A0B428DBull);
    return uint64_t(m) ^ uint64_t(m >> 64);
  }
};

// 32 bytes, in one register where there are 32-byte ones (GCC's generic tuning splits a
// 32-byte memcpy in two, not a move of this type).
typedef uint8_t Half __attribute__((vector_size(32)));

// 32 bytes from s to d; the ranges never overlap (matches are 32 or more bytes back).
inline void copy32(uint8_t* d, const uint8_t* s) {
  Half v;
  std::memcpy(&v, s, 32);
  std::memcpy(d, &v, 32);
}
// 64 bytes from s to d, as if 32 at a time: a match `back` = 32..63 bytes back repeats its
// first back bytes. Both halves are read before any store and the repeat is stored again
// at d + back (for other copies, back = 64: 32 bytes past the end, rewritten later):
// reading back the bytes just stored would wait for them to reach the cache.
inline void copy64(uint8_t* d, const uint8_t* s, size_t back) {
  Half lo, hi;
  std::memcpy(&lo, s, 32);
  std::memcpy(&hi, s + 32, 32);
  std::memcpy(d, &lo, 32);
  std::memcpy(d + 32, &hi, 32);
  std::memcpy(d + back, &lo, 32);
}

// Where each copy kind reads, as masks, so that a token selects its source with no
// branch (kinds are random, and a mispredicted branch costs more than the whole token):
// base + (pos & at) - (d & back) + (offset & table).
struct Source {
  const uint8_t* base;
  size_t at, back, rep, table, rep_set;  // rep_set: the distance becomes the last one
  size_t spread;                         // far: 16 * x, any of 64 Ki strings
};

// One token from 32 random bits: bits 0-4 the literal length, 5-10 the copy kind, 11-15
// its length, 16-31 its distance, dictionary offset or run byte.
inline size_t token(uint8_t* out, size_t pos, uint32_t c, const uint8_t* lit,
                    const uint8_t* random, const Source* sources, const Profile& p,
                    const Profile::Level& L, size_t& last) {
  if (p.matched_literals) {  // the same for every token of the page: predicted
    // Byte i of the run is either literal i, or (a run in Spec::matched_literals of 256)
    // the byte at the last distance with each bit flipped where the page's random bytes i,
    // i - 8, i - 16 and i - 32 all have it. Reads the page's own bytes only, as all parts do.
    Half l, near, a, b, e, f;
    std::memcpy(&l, lit + pos, 32);
    std::memcpy(&near, out + pos - (last < pos ? last : pos), 32);
    std::memcpy(&a, random + pos, 32);
    std::memcpy(&b, random + pos - 8, 32);
    std::memcpy(&e, random + pos - 16, 32);
    std::memcpy(&f, random + pos - 32, 32);
    const uint8_t matched = random[pos - 24] < p.matched_literals ? 0xFF : 0;
    const Half take = Half{} + matched;
    const Half v = ((near ^ (a & b & e & f)) & take) | (l & ~take);
    std::memcpy(out + pos, &v, 32);
  } else {
    copy32(out + pos, lit + pos);
  }
  pos += L.literal_len[c & 31];
  const Source& s = sources[L.copy[(c >> 5) & 63]];
  const size_t n = p.copy_len[L.copy[(c >> 5) & 63]][(c >> 11) & 31];
  const uint32_t x = c >> 16;
  size_t d = (last & s.rep) | (p.distance[x & 255] & ~s.rep);
  d = d < pos ? d : pos;
  last = (d & s.rep_set) | (last & ~s.rep_set);
  // Dictionary offsets favour its start; run buffers sit 64 bytes apart (table bits 6-7).
  const size_t off = (x * x) >> p.dict_shift;
  const size_t back = d & s.back;  // 0 for copies that do not read the page
  copy64(out + pos,
         s.base + (pos & s.at) - back + (off & s.table) + ((size_t{x} << 4) & s.spread),
         back - 1 < 63 ? back : 64);
  return pos + n;
}

// One page into out (kPage + kSlack bytes) from its random bytes (kPage + kSlack, the
// slack zero), its literal bytes (the same size, slack zero) and key. Integer operations and
// copies only: the AVX2 clone (32-byte moves, vector literal bytes) writes the same bytes.
// Not under ThreadSanitizer: the clone's ifunc resolver runs before TSan is set up and
// crashes the program at load.
#ifndef __SANITIZE_THREAD__
__attribute__((target_clones("avx2", "default")))
#endif
void page(uint8_t* out, const uint8_t* lit, const uint8_t* random, uint64_t key, const Profile& p,
          int level) {
  Wy wy{key ^ 0x5F0A3C1B2D4E6978ull};
  uint64_t w = wy.next();
  const int spread = p.spread[w & 7];
  const Profile::Level& L =
      p.levels[spread == kSparse ? (level >= p.sparse_from ? kLevels : level)
                                 : std::clamp(level + spread, 0, kLevels - 1)];
  // The first 32 bytes are random: no page is all zeros, none equals another, and every
  // match has 32 bytes behind it.
  copy32(out, random);
  constexpr size_t all = ~size_t{0};
  const Source sources[kCopies] = {
      {out, all, all, 0, 0, all, 0}, {out, all, all, all, 0, all, 0},
      {p.dict + ((key >> 24) & p.window_mask), 0, 0, 0, ~size_t{15}, 0, 0},
      {out, all, all, 0, 0, 0, 0},
      {out, all, all, all, 0, all, 0}, {p.runs[0], 0, 0, 0, 0xC0, 0, 0},
      {random, all, 0, 0, 0, 0, 0}, {p.far, 0, 0, 0, 0, 0, p.far_mask}};
  size_t pos = 32, last = 64;
  while (pos < kPage) {
    w = wy.next();
    pos = token(out, pos, uint32_t(w), lit, random, sources, p, L, last);
    if (pos >= kPage) break;
    pos = token(out, pos, uint32_t(w >> 32), lit, random, sources, p, L, last);
  }
}

}  // namespace

const char* name(Kind k) {
  switch (k) {
    case Kind::flat: return "flat";
    case Kind::binary: return "binary";
    case Kind::text: return "text";
  }
  return nullptr;
}

bool parse(const char* s, Kind& out) {
  for (Kind k : {Kind::flat, Kind::binary, Kind::text})
    if (std::strcmp(s, name(k)) == 0) return out = k, true;
  return false;
}

void pages(uint8_t* dst, const uint64_t* keys, size_t count, const Model& m,
           const kernels::Table& k) {
  constexpr size_t kBatch = 4;  // pages whose random bytes are made in one kernel call
  const Profile& p = profile(m.kind, m.version);
  // Literal slots made of words, of 256 (Spec::words_from): all of them needs no other
  // literal bytes.
  const int words = p.word_literals ? std::clamp((m.level - p.words_from) * 256 /
                                                     (p.words_full - p.words_from), 0, 256)
                                    : 0;
  // Only the slacks must read as zeros (set below); the rest is written before it is read.
  alignas(64) uint8_t random[kBatch * kPage + kSlack];
  alignas(64) uint8_t lit[kPage + kSlack];
  alignas(64) uint8_t last[kPage + kSlack];
  std::memset(lit + kPage, 0, kSlack);
  for (size_t i = 0; i < count; i += kBatch) {
    const size_t n = std::min(kBatch, count - i);
    k.pages(random, keys + i, n, kPage, kernels::Stores::paired);
    // The slack after a batch's last page must read as zeros: tokens past the page end
    // read it (and write bytes that are dropped).
    std::memset(random + n * kPage, 0, kSlack);
    for (size_t j = 0; j < n; ++j) {
      // A token writes up to kSlack bytes past the page end: straight into the next page's
      // place in dst, which is written after, except for the last page.
      const bool tail = i + j + 1 == count;
      uint8_t* out = tail ? last : dst + kPage * (i + j);
      if (words < 256)
        literal_bytes(reinterpret_cast<uint64_t*>(lit),
                      reinterpret_cast<const uint64_t*>(random + kPage * j), p.lit);
      if (words > 0) word_literals(lit, random + kPage * j, p.slots, words);
      page(out, lit, random + kPage * j, keys[i + j], p, m.level);
      if (tail) std::memcpy(dst + kPage * (i + j), last, kPage);
    }
  }
}

}  // namespace dgen::content
