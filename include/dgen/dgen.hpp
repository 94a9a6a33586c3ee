// dgen — synthetic data with exact dedup and compression ratios.
//
// The bytes of a dataset are a pure function of its identity (Params) and the absolute
// offset: any range can be produced directly, by any number of threads or processes, and
// always gives the same bytes. See docs/data-model.md for the format.
//
// Errors: invalid arguments throw std::invalid_argument (message names the parameter, the
// value and the accepted range); std::out_of_range for offsets past the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dgen/topology.hpp"

namespace dgen {

// The default data format; format 1 stays reproducible byte for byte (Params::format_version).
inline constexpr int kFormatVersion = 2;
inline constexpr int kMinFormatVersion = 1;
inline constexpr int kMaxFormatVersion = 5;
// Format 2 places copies inside windows of this many runs (docs/data-model.md); format 3
// takes the count from Params::dedup_window, at most this.
inline constexpr uint64_t kWindowUnits = 64;
inline constexpr uint64_t kPageSize = 4096;
inline constexpr uint64_t kDefaultDedupUnit = 128 * 1024;
inline constexpr uint64_t kMinDedupUnit = 4 * 1024;
inline constexpr uint64_t kMaxDedupUnit = 64ull * 1024 * 1024;
inline constexpr uint64_t kMaxSize = (1ull << 63) - 1;
inline constexpr double kMaxDedupRatio = 1e6;
// Above about 16, compressors start to disagree (lz4 cannot encode a page in fewer than
// ~16 bytes; at 100, zstd-1 measures 140 and lz4 86). Above 128 a page would keep fewer
// than the 16 random bytes that make it unique, so the bytes stop changing.
inline constexpr double kMaxCompressRatio = 128.0;

// Dataset identity.
struct Params {
  uint64_t seed = 0;
  uint64_t size = 0;
  double dedup_ratio = 1.0;     // >= 1; fractional values are exact
  double compress_ratio = 1.0;  // >= 1
  uint64_t dedup_unit = kDefaultDedupUnit;  // power of two in [4 KiB, 64 MiB]
  int format_version = kFormatVersion;      // 1 to 5
  // Format 2: copies come in runs of this many units that repeat as many consecutive
  // unique units, as copied files and VM images do (1: every unit on its own).
  uint64_t dedup_run = 1;
  // Format 2: what a device holds after `generation` rewrites, each of which changes the
  // content of a keyed change_rate share of the unique units (layout and ratios stay).
  uint64_t generation = 0;
  double change_rate = 1.0;  // in [0, 1]
  // Format 2: every copy of a run shows its content rotated by a keyed byte offset that is
  // not a multiple of 4 KiB: fixed-block dedup finds ~nothing, content-defined chunking
  // most of the ratio.
  bool dedup_shift = false;
  // Format 2: 0 for copies spread evenly over the unique units; s > 0 for a Zipf(s) hot
  // set: a share of every window's slots repeats units drawn with weight 1 / rank^s from
  // all units born so far, as vdbench's hot sets do (ratio still exact).
  double dedup_skew = 0.0;
  // Format 3: runs per window, 1, 4, 16 or 64 (a grid of 1, 2, 4 or 8 runs a side); the
  // ratio is exact at every whole window. Formats 1 and 2: 64.
  uint64_t dedup_window = kWindowUnits;
  // What a page's bytes look like to a compressor (docs/data-model.md, "Content profiles"):
  // "flat" (random bytes then one repeated byte; every compressor measures compress_ratio),
  // "binary" or "text" (LZ-structured, like executables or source; zstd -3 over 1 MiB frames
  // measures compress_ratio). Any format version; the keys of units and pages stay. Format
  // 4 is format 3 with the profiles' version 2 pages (binary compresses like shared
  // libraries with bzip2 and xz too; text comes closer), format 5 is format 4 with text's
  // version 3 (words: like source with every compressor); flat pages are format 3's.
  std::string content = "flat";
};
inline constexpr double kMaxDedupSkew = 4.0;
inline constexpr uint64_t kMaxGeneration = 1ull << 32;
inline constexpr uint64_t kMaxDedupRun = 1ull << 20;

// What the core's loops keep between calls on consecutive units (src/core/dataset_detail.hpp);
// the Dataset overloads that take one are for those loops.
struct VersionCache;
struct SlotCache;

// A validated dataset identity with its derived layout.
class Dataset {
 public:
  // Throws std::invalid_argument, also for a DGEN_ISA naming no SIMD path usable here
  // (unless set_isa() chose one).
  explicit Dataset(const Params& p);

  const Params& params() const { return params_; }
  uint64_t size() const { return params_.size; }
  uint64_t unit_count() const { return units_; }
  uint64_t unique_count() const { return unique_; }
  uint32_t random_bytes_per_page() const { return random_len_; }
  // The content profile (0 flat, 1 binary, 2 text) and its calibrated level.
  uint8_t content_kind() const { return content_kind_; }
  int content_level() const { return content_level_; }
  // What zstd -3 measures over 1 MiB frames of binary or text pages, from the profile's
  // calibration: compress_ratio where the profile reaches it, else the nearest it
  // reaches (flat: compress_ratio).
  double content_ratio() const;

  // The unique unit shown at unit index i (i < unit_count()).
  uint64_t unique_id(uint64_t unit_index) const;
  uint64_t unique_id(uint64_t unit_index, SlotCache& cache) const;  // faster in a loop
  // The key the content of a unique unit is made from (at this dataset's generation).
  uint64_t unit_key(uint64_t unique_id) const;
  uint64_t unit_key(uint64_t unique_id, VersionCache& cache) const;  // faster in a loop
  // Format 2: the latest generation <= g that changed this unique unit (0: none did).
  // Rewrites change whole runs (dedup_run units), so a copied file changes as one.
  uint64_t version(uint64_t unique_id, uint64_t g) const;
  uint64_t version(uint64_t unique_id, uint64_t g, VersionCache& cache) const;
  // The same identity at another generation.
  Dataset at_generation(uint64_t g) const;
  // Format 2, h >= 1: rewrite h gave this unique unit new content (version(id, h) == h).
  // One permutation; always false in format 1.
  bool changed_at(uint64_t unique_id, uint64_t h) const;
  // Format 2, h >= 1: the unit index ranges [first, last) within [begin, end), merged and
  // in order, whose content differs between generations h - 1 and h: what a rewrite in
  // place from h - 1 to h writes (dgen write --changed-only). Cost O(runs in the range).
  std::vector<std::pair<uint64_t, uint64_t>> changed_units(uint64_t begin, uint64_t end,
                                                           uint64_t h) const;
  // Format 2 with dedup_shift: the rotation in bytes of the run copy that unit i belongs
  // to; 0 for a first occurrence and without dedup_shift.
  uint64_t shift(uint64_t unit_index) const;
  uint64_t shift(uint64_t unit_index, SlotCache& cache) const;
  // Format 2: distinct runs among the first n runs (units, at dedup_run 1) when n is a
  // multiple of kWindowUnits (and for dedup 1, any n): max(1, floor(n / dedup_ratio + 1/2)).
  // Format 3: floor((n - 1) / dedup_ratio) + 1 (slot s shows id floor(s / dedup_ratio)),
  // at every n that is a multiple of the window.
  uint64_t unique_before(uint64_t n) const;

 private:
  // The helpers that read the derived layout below, and their types: src/core/model.cpp,
  // generations.cpp and dataset_detail.hpp.
  struct Detail;
  struct BirthWindow;
  struct Early;

  uint64_t hot_ = 0;                // dedup_skew: hot slots per window
  uint64_t window_ = kWindowUnits;  // runs per window
  uint64_t side_ = 8;               // of the window's grid (side^2 = window)
  int side_shift_ = 3;              // log2(side_)
  std::shared_ptr<const Early> early_;  // dedup_skew with generations (dataset_detail.hpp)
  Params params_;
  uint64_t key_ = 0;  // the seed, mixed (format 2) so that related seeds give unrelated data
  uint64_t units_ = 0;
  uint64_t unique_ = 0;
  double inverse_ratio_ = 1.0;  // 1 / dedup_ratio
  bool exact_inverse_ = true;   // dedup_ratio is a power of two
  uint32_t random_len_ = 0;
  uint8_t content_kind_ = 0;
  int content_level_ = 0;
  int unit_shift_ = 0;
};

// How a call is executed; never changes the bytes.
struct FillOptions {
  unsigned threads = 0;     // 0: the CPUs in this process's affinity mask (on numa_node)
  uint64_t block_size = 0;  // 0: kDefaultBlockSize; the unit of work handed to a thread
  NumaMode numa_mode = NumaMode::Auto;  // see plan_workers() in topology.hpp
  std::optional<unsigned> numa_node;    // bind workers (and allocations) to this node
  // Polled on the calling thread every few tens of milliseconds during long calls; when it
  // returns true the call stops and throws Interrupted (Python uses it for Ctrl-C).
  std::function<bool()> interrupted;
};
inline constexpr uint64_t kDefaultBlockSize = 1024 * 1024;
inline constexpr uint64_t kMaxBlockSize = 64ull << 20;

// Thrown when FillOptions::interrupted asked a call to stop; the output is then incomplete.
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

// Writes bytes [offset, offset + out.size()) of the dataset into out.
// Throws std::out_of_range if the range extends past the dataset's size.
void fill(const Dataset& ds, uint64_t offset, std::span<uint8_t> out,
          const FillOptions& opt = {});

// One range of data that differs from the dataset. Ranges separated by fewer than
// kVerifyGap matching bytes are one range, so a lost page reads as one range even where
// its random bytes match by chance.
struct Mismatch {
  uint64_t offset = 0;  // dataset offset of the first differing byte
  uint64_t length = 0;  // through the last differing byte of the range
  bool zeros = false;   // the range reads as all zeros (lost write, thin-provisioned hole)
  // The range is a whole dedup unit holding content that belongs at this dataset offset
  // (a misdirected or swapped write); -1 when not found. Looked for among the reported
  // ranges of the same call only.
  int64_t belongs_at = -1;
  // The range is a whole dedup unit holding what it held at this older generation (a lost
  // write); -1 when not. Looked for in datasets of generation 1 and more.
  int64_t stale_generation = -1;
};
inline constexpr uint64_t kVerifyGap = 64;

struct VerifyResult {
  uint64_t bytes = 0;             // bytes compared
  uint64_t mismatched_bytes = 0;  // bytes that differ
  uint64_t range_count = 0;       // every range found
  std::vector<Mismatch> ranges;   // the first max_ranges of them, in offset order
  bool ok() const { return mismatched_bytes == 0; }
};

// Compares `data` with bytes [offset, offset + data.size()) of the dataset, regenerating
// them block by block in cache (no copy of the whole range is made).
VerifyResult verify(const Dataset& ds, uint64_t offset, std::span<const uint8_t> data,
                    const FillOptions& opt = {}, size_t max_ranges = 20);

// verify() over data that arrives in pieces, such as a file read back in chunks: the
// result is the one a single call over all of it would give, ranges merged across pieces
// that follow each other. Memory stays constant: the first max_ranges ranges and the last.
// Moved units are found within a piece. Not thread-safe.
class Verifier {
 public:
  explicit Verifier(Dataset ds, size_t max_ranges = 20);
  // Pieces come in offset order, each at or after the end of the one before (a gap is
  // simply not compared). Throws std::out_of_range past the dataset's end and
  // std::invalid_argument for a piece that starts before the previous one ends; then, as
  // after Interrupted, the piece is not counted.
  void add(uint64_t offset, std::span<const uint8_t> data, const FillOptions& opt = {});
  const VerifyResult& result() const { return result_; }
  // The last range found, listed in result().ranges or not (nullptr: none yet): what a
  // range of the next piece may join, when pieces are checked by several Verifiers.
  const Mismatch* last() const { return has_last_ ? &last_ : nullptr; }

 private:
  void append(const Mismatch& m, std::span<const uint8_t> data, uint64_t offset, bool first);

  Dataset ds_;
  size_t max_ranges_;
  VerifyResult result_;
  Mismatch last_;               // the latest range, which may still grow into the next piece
  bool has_last_ = false;
  bool last_listed_ = false;    // last_ is result_.ranges.back()
  uint64_t end_ = 0;            // where the previous piece ended
  std::vector<uint8_t> tail_;   // its last kVerifyGap bytes, to judge a merge across pieces
};

// Sequential reader over a dataset: the C++ twin of dgen_py.Generator.
// Thread-safe: concurrent read() calls each claim their own contiguous range.
class Stream {
 public:
  // Throws std::invalid_argument for an invalid identity or a numa_node that does not exist.
  explicit Stream(const Params& p, FillOptions opt = {});

  // Fills up to out.size() bytes at the current position; returns the count (0 at end).
  // On an error (Interrupted included) the range is given back, as unclaim() does.
  uint64_t read(std::span<uint8_t> out);

  // Reserves the next min(max_len, remaining) bytes for the caller to fill itself (as the
  // Python binding does, between checks for Ctrl-C): the identity and range to generate.
  struct Claim {
    Dataset dataset;
    uint64_t offset;
    uint64_t length;
  };
  Claim claim(uint64_t max_len);
  // Gives a claim back when it could not be filled (an error, Ctrl-C), if nothing was
  // claimed after it: the next read then starts at its offset again.
  void unclaim(const Claim& c);
  const FillOptions& options() const { return opt_; }
  void seek(uint64_t offset);  // offset <= size; throws std::out_of_range otherwise
  // New seed; the stream continues at the current position with the new seed's bytes.
  void set_seed(uint64_t seed);

  uint64_t position() const;
  uint64_t size() const { return ds_.size(); }
  uint64_t seed() const;
  Dataset dataset_copy() const;  // the identity in use (set_seed may change it)

 private:
  mutable std::mutex mu_;
  Dataset ds_;
  FillOptions opt_;
  uint64_t pos_ = 0;
};

// True when fill()/verify() of [offset, offset + len) runs wholly on the calling thread
// (one block, no NUMA node to run on): no worker hand-off, no wait for the pool.
bool runs_on_caller(uint64_t offset, uint64_t len, const FillOptions& opt);

// Name of the SIMD path in use: "scalar", "avx2" or "avx512". Unless set_isa() chose one,
// the first use takes DGEN_ISA's (scalar, avx2 or avx512), else the best this build, CPU
// and OS support; a DGEN_ISA naming no usable path is refused: this, Dataset's constructor
// and fill() throw std::invalid_argument naming the value and the accepted ones.
const char* isa_name();
// Chooses the SIMD path from code, over DGEN_ISA: "scalar", "avx2" or "avx512". Throws
// std::invalid_argument naming the value and the accepted ones for a name that is unknown
// or not usable here. Every path makes the same bytes; a call already running may finish
// on the path it started with.
void set_isa(std::string_view isa);

// CPUs this process may run on (sched_getaffinity), at least 1.
unsigned available_cpus();

}  // namespace dgen
