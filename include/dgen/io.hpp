// Writing a dataset to a file descriptor: the generate-and-write loop of `dgen write` and
// `dgen generate`, kept out of Python.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <system_error>

#include "dgen/dgen.hpp"

namespace dgen {

struct WriteTarget {
  int fd = -1;
  // Where dataset offset `offset` of write_range() goes in the file (pwrite). -1: write()
  // at the descriptor's position, for pipes, sockets and terminals.
  int64_t file_offset = 0;
  // The descriptor was opened with O_DIRECT: bytes are made with streaming stores (the
  // device reads them by DMA, no copy); lengths and offsets must be multiples of 4 KiB.
  bool direct = false;
  uint64_t chunk = 0;  // bytes per write; 0: write_chunk()
  // Called on the writing thread every few tens of milliseconds and at the end with the
  // bytes written since the last call; returning false stops the write early.
  std::function<bool(uint64_t written)> progress;
};

// A failed write(): code() is the errno; offset the file offset it failed at (-1 for a
// descriptor written without an offset).
struct WriteError : std::system_error {
  WriteError(int err, int64_t at);
  int64_t offset;
};

// Bytes per chunk handed to a pipe when WriteTarget::chunk is 0: a whole huge page, so
// that the fresh memory each chunk is made in costs one page fault.
inline constexpr uint64_t kPipeChunk = 2u << 20;

// Bytes per write when WriteTarget::chunk is 0: a power of two that fits in the L2 cache
// (256 KiB .. 2 MiB), so that write() copies data that is still in cache.
uint64_t write_chunk();
// Memory one write_range() call holds with these options: its chunks.
uint64_t write_memory(const WriteTarget& t, const FillOptions& opt);

// Generates bytes [offset, offset + len) of the dataset and writes them to t.fd, chunk by
// chunk from page-aligned buffers that stay in cache. A pipe (with file_offset -1) is given
// each chunk by reference (vmsplice), and the chunk's pages are then dropped from this
// process, never to be written again; write() where vmsplice is refused. With opt.threads
// 1 everything runs on the calling thread (no pool); otherwise up to 3 producer threads
// (threads - 1, at most 3) make the next chunks while the caller writes. Returns the bytes
// written: len, or fewer when progress() said stop.
// Throws WriteError, and Interrupted (opt.interrupted, polled like progress).
uint64_t write_range(const Dataset& ds, uint64_t offset, uint64_t len, const WriteTarget& t,
                     const FillOptions& opt = {});

// CRC-32C of n more bytes at data, continued from crc: the signature of crc32c_extend() of
// Google's CRC32C library, which the Python package finds at run time (the build needs no
// CRC library).
using Crc32cExtend = uint32_t (*)(uint32_t crc, const uint8_t* data, size_t n);

// TFRecord records whose payloads lie `stride` bytes apart in the dataset: record i is
// `before` (the length, its masked CRC, the Example up to the payload), dataset bytes
// [offset + i * stride, + size), `after` (the rest of the Example), and the masked CRC-32C
// of the Example, continued from head_crc (the CRC of the Example's bytes in `before`).
// stride 0 means size: the payloads follow each other.
struct TfRecords {
  std::span<const uint8_t> before;
  uint32_t head_crc = 0;
  std::span<const uint8_t> after;
  uint64_t offset = 0, size = 0, count = 0, stride = 0;
};

// Writes the records at t.file_offset (>= 0; not O_DIRECT), laid out a chunk at a time in
// a cache-sized buffer, each payload checksummed there as it is made, one pwrite a chunk.
// On the calling thread only (opt.threads is not used). progress() counts payload bytes.
// Returns the file bytes written: every record's, or fewer when progress() said stop.
// Throws WriteError, Interrupted, std::out_of_range and std::invalid_argument.
uint64_t write_tfrecords(const Dataset& ds, const TfRecords& r, Crc32cExtend crc,
                         const WriteTarget& t, const FillOptions& opt = {});

}  // namespace dgen
