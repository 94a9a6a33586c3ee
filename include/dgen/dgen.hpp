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
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "dgen/topology.hpp"

namespace dgen {

inline constexpr int kFormatVersion = 1;
inline constexpr uint64_t kPageSize = 4096;
inline constexpr uint64_t kDefaultDedupUnit = 128 * 1024;
inline constexpr uint64_t kMinDedupUnit = 4 * 1024;
inline constexpr uint64_t kMaxDedupUnit = 64ull * 1024 * 1024;
inline constexpr uint64_t kMaxSize = (1ull << 63) - 1;
inline constexpr double kMaxDedupRatio = 1e6;
// Above about 16, compressors start to disagree (lz4 cannot encode a page in fewer than
// ~16 bytes); 64 is as far as a compress_ratio still means something.
inline constexpr double kMaxCompressRatio = 64.0;

// Dataset identity (format version 1).
struct Params {
  uint64_t seed = 0;
  uint64_t size = 0;
  double dedup_ratio = 1.0;     // >= 1; fractional values are exact
  double compress_ratio = 1.0;  // >= 1
  uint64_t dedup_unit = kDefaultDedupUnit;  // power of two in [4 KiB, 64 MiB]
};

// A validated dataset identity with its derived layout.
class Dataset {
 public:
  explicit Dataset(const Params& p);  // throws std::invalid_argument

  const Params& params() const { return params_; }
  uint64_t size() const { return params_.size; }
  uint64_t unit_count() const { return units_; }
  uint64_t unique_count() const { return unique_; }
  uint32_t random_bytes_per_page() const { return random_len_; }

  // The unique unit shown at unit index i (i < unit_count()).
  uint64_t unique_id(uint64_t unit_index) const;

 private:
  Params params_;
  uint64_t units_ = 0;
  uint64_t unique_ = 0;
  uint32_t random_len_ = 0;
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
  void reset() { seek(0); }
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

// A seed from the operating system's entropy source.
uint64_t random_seed();

// Name of the SIMD path in use: "scalar" or "avx2". DGEN_ISA=scalar|avx2 overrides
// detection (an unsupported request falls back to the best supported path).
const char* isa_name();

// CPUs this process may run on (sched_getaffinity), at least 1.
unsigned available_cpus();

}  // namespace dgen
