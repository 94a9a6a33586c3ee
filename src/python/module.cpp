// dgen_py._core: the bindings of the core (argument conversion, buffer checks, the Python
// types). Every call that releases the GIL runs under the protocol of protocol.cpp (GIL,
// Ctrl-C, exit, fork, signal handlers), where its rules are written down.
#include <nanobind/nanobind.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>
#include <nanobind/stl/pair.h>
#include <dlfcn.h>

#include <array>
#include <atomic>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

#include "dgen/dgen.hpp"
#include "dgen/histogram.hpp"
#include "dgen/io.hpp"
#include "dgen/memory.hpp"
#include "dgen/tensor.hpp"
#include "dgen/topology.hpp"
#include "protocol.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using dgen::py::CallScope;
using dgen::py::PyVerifier;
using dgen::py::Released;
using dgen::py::run_released;
using dgen::py::released_write;

// A caller's buffer, held for the length of one call: C-contiguous, and writable if asked.
class Buffer {
 public:
  Buffer(nb::handle obj, bool writable) {
    if (!PyObject_CheckBuffer(obj.ptr()))
      throw nb::type_error(("expected a buffer (bytearray, memoryview, numpy array, mmap, "
                            "array.array), got " +
                            std::string(Py_TYPE(obj.ptr())->tp_name))
                               .c_str());
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_FULL_RO) != 0) throw nb::python_error();
    if (writable && view_.readonly) {
      PyBuffer_Release(&view_);
      throw nb::value_error("buffer is read-only; pass a writable one such as a bytearray");
    }
    if (!PyBuffer_IsContiguous(&view_, 'C')) {
      PyBuffer_Release(&view_);
      throw nb::value_error("buffer is not C-contiguous; pass a contiguous array or a copy");
    }
  }
  ~Buffer() { PyBuffer_Release(&view_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  uint8_t* data() const { return static_cast<uint8_t*>(view_.buf); }
  uint64_t size() const { return uint64_t(view_.len); }
  std::string format() const { return view_.format ? view_.format : "B"; }

 private:
  Py_buffer view_{};
};

// Read-only, zero-copy bytes produced by the generator: page-aligned memory, bound to the
// generator's NUMA node when it has one.
class BytesView {
 public:
  BytesView(uint64_t n, std::optional<unsigned> node)
      : data_(static_cast<uint8_t*>(dgen::allocate(n, node))), size_(n), node_(node) {}
  ~BytesView() { dgen::free_memory(data_, size_, node_); }
  BytesView(const BytesView&) = delete;
  BytesView& operator=(const BytesView&) = delete;

  uint8_t* data() { return data_; }
  uint64_t size() const { return size_; }
  nb::bytes to_bytes() const { return nb::bytes(reinterpret_cast<const char*>(data_), size_); }

  static int getbuffer(PyObject* self, Py_buffer* view, int flags) {
    if (!nb::inst_ready(self)) {  // BytesView.__new__ without __init__
      PyErr_SetString(PyExc_BufferError, "BytesView is not initialised");
      return -1;
    }
    BytesView* bv = nb::inst_ptr<BytesView>(self);
    return PyBuffer_FillInfo(view, self, bv->data(), Py_ssize_t(bv->size()), 1, flags);
  }

 private:
  uint8_t* data_;
  uint64_t size_;
  std::optional<unsigned> node_;
};

PyType_Slot bytesview_slots[] = {{Py_bf_getbuffer, (void*)BytesView::getbuffer}, {0, nullptr}};

// Fills a claimed range; on any failure the claim is given back, so no range is lost.
void fill_claim(dgen::Stream& s, const dgen::Stream::Claim& c, uint8_t* out) {
  try {
    run_released(c.offset, c.length, s.options(), [&](const dgen::FillOptions& o) {
      dgen::fill(c.dataset, c.offset, {out, c.length}, o);
    });
  } catch (...) {
    s.unclaim(c);
    throw;
  }
}

uint64_t stream_fill(dgen::Stream& s, nb::handle buf) {
  CallScope scope("fill");
  Buffer b(buf, /*writable=*/true);
  const auto c = s.claim(b.size());
  fill_claim(s, c, b.data());
  return c.length;
}

nb::object stream_read(dgen::Stream& s, uint64_t n) {
  CallScope scope("read");
  const auto c = s.claim(n);
  BytesView* bv;
  try {
    bv = new BytesView(c.length, s.options().numa_node);
  } catch (...) {
    s.unclaim(c);
    throw;
  }
  nb::object owner = nb::cast(bv, nb::rv_policy::take_ownership);
  fill_claim(s, c, bv->data());
  return owner;
}

// read() of a file: the bytes as a new bytes object, filled in place (no copy). A refusal
// names the size, as every MemoryError of ours does.
nb::object stream_read_bytes(dgen::Stream& s, uint64_t n) {
  CallScope scope("read");
  const auto c = s.claim(n);
  PyObject* b;
  try {
    dgen::check_memory(c.length);
    b = PyBytes_FromStringAndSize(nullptr, Py_ssize_t(c.length));
    if (!b) {
      PyErr_Clear();
      throw dgen::OutOfMemory("asked " + dgen::format_bytes(c.length) + " (" +
                              std::to_string(c.length) +
                              " bytes); Python could not allocate them");
    }
  } catch (...) {
    s.unclaim(c);
    throw;
  }
  nb::object owner = nb::steal(b);
  fill_claim(s, c, reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(b)));
  return owner;
}

dgen::VerifyResult stream_verify(dgen::Stream& s, nb::handle buf, uint64_t offset,
                                 size_t max_ranges) {
  CallScope scope("verify");
  Buffer b(buf, /*writable=*/false);
  const dgen::Dataset ds = s.dataset_copy();
  return run_released(offset, b.size(), s.options(), [&](const dgen::FillOptions& o) {
    return dgen::verify(ds, offset, {b.data(), b.size()}, o, max_ranges);
  });
}

PyVerifier* stream_verifier(dgen::Stream& s, size_t max_ranges) {
  return new PyVerifier{dgen::Verifier(s.dataset_copy(), max_ranges), s.options()};
}

void verifier_add(PyVerifier& pv, nb::handle buf, uint64_t offset) {
  CallScope scope("Verifier.add");
  Buffer b(buf, /*writable=*/false);
  const PyVerifier::Lock lock(pv);
  run_released(offset, b.size(), pv.opt, [&](const dgen::FillOptions& o) {
    pv.v.add(offset, {b.data(), b.size()}, o);
  });
}

dgen::VerifyResult verifier_result(PyVerifier& pv) {
  CallScope scope("Verifier.result");
  const PyVerifier::Lock lock(pv);
  return pv.v.result();
}

// A new BytesView of `count` float32 values, filled by call(values, options) without the GIL.
template <class F>
nb::object float_view(uint64_t count, unsigned threads, const std::string& numa_mode, F&& call) {
  if (count > dgen::kMaxSize / 4)
    throw nb::value_error(("count must be at most " + std::to_string(dgen::kMaxSize / 4) +
                           " values, got " + std::to_string(count)).c_str());
  auto* bv = new BytesView(count * 4, std::nullopt);
  nb::object owner = nb::cast(bv, nb::rv_policy::take_ownership);
  const dgen::FillOptions opt{.threads = threads, .numa_mode = dgen::parse_numa_mode(numa_mode)};
  run_released(0, count * 4, opt, [&](const dgen::FillOptions& o) {
    call(std::span<float>(reinterpret_cast<float*>(bv->data()), count), o);
  });
  return owner;
}

void normalize_buffer(nb::handle buf, uint64_t dim, unsigned threads) {
  Buffer b(buf, /*writable=*/true);
  const std::string f = b.format();
  if (f != "B" && f != "f" && f != "<f" && f != "=f" && f != "@f")
    throw nb::value_error(("buffer must hold float32 (format 'f') or raw bytes (format 'B'), "
                           "got format '" + f + "'").c_str());
  if (dim == 0 || b.size() % (4 * dim) != 0)
    throw nb::value_error(("buffer length must be a multiple of dim * 4 = " +
                           std::to_string(4 * dim) + " bytes, got " + std::to_string(b.size()))
                              .c_str());
  if (reinterpret_cast<uintptr_t>(b.data()) % 4 != 0)
    throw nb::value_error("buffer must start on a 4-byte boundary, as float32 values do");
  const dgen::FillOptions opt{.threads = threads};
  run_released(0, b.size(), opt, [&](const dgen::FillOptions& o) {
    dgen::normalize_rows({reinterpret_cast<float*>(b.data()), b.size() / 4}, dim, o);
  });
}

dgen::Dist parse_dist(const std::string& d) {
  if (d == "uniform") return dgen::Dist::uniform;
  if (d == "normal") return dgen::Dist::normal;
  if (d == "integers") return dgen::Dist::integers;
  if (d == "zipf") return dgen::Dist::zipf;
  throw nb::value_error(("dist must be uniform, normal, integers or zipf, got '" + d + "'").c_str());
}

void fill_tensor_buffer(nb::handle buf, const std::string& dtype, const std::string& dist,
                        double low, double high, double mean, double std, uint64_t first,
                        uint64_t count, double exponent, uint64_t seed, uint64_t start,
                        unsigned threads) {
  Buffer b(buf, /*writable=*/true);
  const dgen::Dtype d = dgen::parse_dtype(dtype);
  const dgen::TensorParams p{parse_dist(dist), low, high, mean, std, first, count, exponent};
  const dgen::FillOptions opt{.threads = threads};
  run_released(0, b.size(), opt, [&](const dgen::FillOptions& o) {
    dgen::fill_tensor(seed, start, d, p, {b.data(), b.size()}, o);
  });
}

void normalize_f64_buffer(nb::handle buf, uint64_t dim, unsigned threads) {
  Buffer b(buf, /*writable=*/true);
  if (dim == 0 || b.size() % (8 * dim) != 0 || reinterpret_cast<uintptr_t>(b.data()) % 8 != 0)
    throw nb::value_error("buffer must hold aligned rows of dim float64 values");
  const dgen::FillOptions opt{.threads = threads};
  run_released(0, b.size(), opt, [&](const dgen::FillOptions& o) {
    dgen::normalize_rows({reinterpret_cast<double*>(b.data()), b.size() / 8}, dim, o);
  });
}

// Writes stream bytes [offset, offset + length) to fd (see released_write).
uint64_t stream_write(dgen::Stream& s, int fd, uint64_t offset, uint64_t length,
                      int64_t file_offset, bool direct, uint64_t chunk, nb::object tick) {
  CallScope scope("write");
  const dgen::Dataset ds = s.dataset_copy();
  return released_write(s.options(), {fd, file_offset, direct, chunk, {}}, tick,
                        [&](const dgen::WriteTarget& t, const dgen::FillOptions& o) {
                          return dgen::write_range(ds, offset, length, t, o);
                        });
}

// crc32c_extend() of the CRC32C library use_crc32c() found; null before.
std::atomic<dgen::Crc32cExtend> crc32c_extend{nullptr};

void use_crc32c(const std::string& path) {
  // Never closed: the function stays valid for every later call.
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    PyErr_SetString(PyExc_OSError, (std::string("use_crc32c: ") + dlerror()).c_str());
    throw nb::python_error();
  }
  // dlsym on a handle searches the object and what it links: an extension module that
  // links the library will do.
  void* fn = dlsym(lib, "crc32c_extend");
  if (!fn) {
    PyErr_SetString(PyExc_OSError,
                    ("use_crc32c: no crc32c_extend in " + path + " or what it links").c_str());
    throw nb::python_error();
  }
  crc32c_extend = reinterpret_cast<dgen::Crc32cExtend>(fn);
}

// Writes TFRecord records (dgen::TfRecords) at file_offset of fd; returns the file bytes.
uint64_t stream_write_tfrecords(dgen::Stream& s, int fd, nb::bytes before, uint32_t head_crc,
                                nb::bytes after, uint64_t offset, uint64_t size,
                                uint64_t count, int64_t file_offset, uint64_t chunk,
                                nb::object tick, uint64_t stride) {
  CallScope scope("write_tfrecords");
  const dgen::Crc32cExtend crc = crc32c_extend;
  if (!crc) throw std::runtime_error("write_tfrecords: no CRC32C library: call use_crc32c()");
  const dgen::Dataset ds = s.dataset_copy();
  const auto bytes = [](const nb::bytes& b) {
    return std::span(reinterpret_cast<const uint8_t*>(b.c_str()), b.size());
  };
  const dgen::TfRecords r{bytes(before), head_crc, bytes(after), offset, size, count, stride};
  return released_write(s.options(), {fd, file_offset, false, chunk, {}}, tick,
                        [&](const dgen::WriteTarget& t, const dgen::FillOptions& o) {
                          return dgen::write_tfrecords(ds, r, crc, t, o);
                        });
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "dgen core: synthetic data with exact dedup and compression ratios";
  // A range past the dataset's end is a bad argument: ValueError, like every other one.
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const std::out_of_range& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const dgen::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const dgen::WriteError& e) {  // OSError(errno, ...) makes BrokenPipeError etc.
      std::string msg = e.code().message();
      if (e.offset >= 0) msg += " at offset " + std::to_string(e.offset);
      PyErr_SetObject(PyExc_OSError, nb::make_tuple(e.code().value(), msg).ptr());
    }
  });
  dgen::py::install_protocol();
  // Objects held by daemon threads at exit are not leaks worth a warning.
  nb::set_leak_warnings(false);
  m.attr("FORMAT_VERSION") = dgen::kFormatVersion;
  m.attr("MIN_FORMAT_VERSION") = dgen::kMinFormatVersion;
  m.attr("WINDOW_UNITS") = dgen::kWindowUnits;
  m.attr("MAX_FORMAT_VERSION") = dgen::kMaxFormatVersion;
  m.attr("MAX_DEDUP_RUN") = dgen::kMaxDedupRun;
  m.attr("MAX_GENERATION") = dgen::kMaxGeneration - 1;
  m.attr("MAX_DEDUP_SKEW") = dgen::kMaxDedupSkew;
  m.attr("MAX_BLOCK_SIZE") = dgen::kMaxBlockSize;
  m.attr("VERIFY_GAP") = dgen::kVerifyGap;
  m.attr("MAX_DEDUP_RATIO") = dgen::kMaxDedupRatio;
  m.attr("MAX_COMPRESS_RATIO") = dgen::kMaxCompressRatio;

  nb::class_<BytesView>(m, "BytesView", nb::type_slots(bytesview_slots),
                        "Read-only bytes from the generator; supports the buffer protocol "
                        "(memoryview, numpy.frombuffer, bytes()) without copying.")
      .def("__len__", &BytesView::size)
      .def("__bytes__", &BytesView::to_bytes)
      .def("tobytes", &BytesView::to_bytes)
      .def("__repr__", [](BytesView& v) { return "BytesView(" + std::to_string(v.size()) + " bytes)"; });

  nb::class_<dgen::Stream>(m, "Stream")
      .def("__init__",
           [](dgen::Stream* self, uint64_t size, double dedup_ratio, double compress_ratio,
              uint64_t seed, uint64_t dedup_unit, unsigned threads, uint64_t block_size,
              const std::string& numa_mode, std::optional<unsigned> numa_node,
              int format_version, uint64_t dedup_run, uint64_t generation,
              double change_rate, bool dedup_shift, double dedup_skew, uint64_t dedup_window,
              const std::string& content) {
             dgen::Params p{seed, size, dedup_ratio, compress_ratio, dedup_unit, format_version,
                            dedup_run, generation, change_rate, dedup_shift, dedup_skew,
                            dedup_window, content};
             dgen::FillOptions opt{.threads = threads,
                                   .block_size = block_size,
                                   .numa_mode = dgen::parse_numa_mode(numa_mode),
                                   .numa_node = numa_node};
             new (self) dgen::Stream(p, opt);
           },
           "size"_a, "dedup_ratio"_a, "compress_ratio"_a, "seed"_a, "dedup_unit"_a,
           "threads"_a, "block_size"_a, "numa_mode"_a = "auto", "numa_node"_a = nb::none(),
           "format_version"_a = dgen::kFormatVersion, "dedup_run"_a = 1,
           "generation"_a = 0, "change_rate"_a = 1.0, "dedup_shift"_a = false,
           "dedup_skew"_a = 0.0, "dedup_window"_a = dgen::kWindowUnits, "content"_a = "flat")
      // Buffer arguments take None too, so that Buffer's error says what a buffer is.
      .def("fill", &stream_fill, "buffer"_a.none())
      .def("read", &stream_read, "n"_a)
      .def("read_bytes", &stream_read_bytes, "n"_a)
      .def("verify", &stream_verify, "buf"_a.none(), "offset"_a, "max_ranges"_a = 20)
      .def("verifier", &stream_verifier, "max_ranges"_a = 20, nb::rv_policy::take_ownership)
      .def("write", &stream_write, "fd"_a, "offset"_a, "length"_a, "file_offset"_a = -1,
           "direct"_a = false, "chunk"_a = 0, "tick"_a = nb::none(),
           "Writes dataset bytes [offset, offset + length) to fd at file_offset (-1: write() "
           "at its position); tick(n) every few tens of ms, a true result stops.")
      .def("write_tfrecords", &stream_write_tfrecords, "fd"_a, "before"_a, "head_crc"_a,
           "after"_a, "offset"_a, "size"_a, "count"_a, "file_offset"_a, "chunk"_a = 0,
           "tick"_a = nb::none(), "stride"_a = 0,
           "Writes count TFRecord records at file_offset of fd: before, stream bytes [offset + "
           "i * stride, + size) (stride 0: size), after, the masked CRC-32C of the Example "
           "continued from head_crc. Returns the file bytes written; tick(n) counts payload "
           "bytes.")
      .def("seek", &dgen::Stream::seek, "offset"_a)
      .def("set_seed", &dgen::Stream::set_seed, "seed"_a)
      .def_prop_ro("position", &dgen::Stream::position)
      .def_prop_ro("size", &dgen::Stream::size)
      .def_prop_ro("seed", &dgen::Stream::seed)
      .def_prop_ro("unique_units", [](dgen::Stream& s) { return s.dataset_copy().unique_count(); })
      .def_prop_ro("format_version",
                   [](dgen::Stream& s) { return s.dataset_copy().params().format_version; })
      .def_prop_ro("content_ratio", [](dgen::Stream& s) { return s.dataset_copy().content_ratio(); })
      .def("unique_id", [](dgen::Stream& s, uint64_t unit) {
             const dgen::Dataset ds = s.dataset_copy();
             if (unit >= ds.unit_count())
               throw std::out_of_range("unit must be in [0, " + std::to_string(ds.unit_count()) +
                                       "), got " + std::to_string(unit));
             return ds.unique_id(unit);
           }, "unit"_a)
      .def("changed_units", [](dgen::Stream& s, uint64_t begin, uint64_t end, uint64_t generation) {
             const dgen::Dataset ds = s.dataset_copy();
             const Released unlocked;  // parks at interpreter exit (protocol.cpp)
             return ds.changed_units(begin, end, generation);
           }, "begin"_a, "end"_a, "generation"_a,
           "Unit ranges [first, last) in [begin, end) that rewrite `generation` changed.");

  nb::class_<PyVerifier>(m, "Verifier",
                         "verify() over data that arrives in pieces, in offset order.")
      .def("add", &verifier_add, "buf"_a.none(), "offset"_a)
      .def_prop_ro("result", &verifier_result)
      .def_prop_ro("last", [](PyVerifier& pv) -> std::optional<dgen::Mismatch> {
        const PyVerifier::Lock lock(pv);
        const dgen::Mismatch* m = pv.v.last();
        return m ? std::optional<dgen::Mismatch>(*m) : std::nullopt;
      }, "The last range found, listed in result.ranges or not; None when none was.");

  nb::class_<dgen::Mismatch>(m, "Mismatch", "A range of data that differs from the dataset.")
      .def_ro("offset", &dgen::Mismatch::offset, "Dataset offset of the first differing byte.")
      .def_ro("length", &dgen::Mismatch::length, "Bytes through the last differing byte.")
      .def_ro("zeros", &dgen::Mismatch::zeros, "The range reads as all zeros.")
      .def_prop_ro("belongs_at",
                   [](const dgen::Mismatch& x) -> std::optional<uint64_t> {
                     if (x.belongs_at < 0) return std::nullopt;
                     return uint64_t(x.belongs_at);
                   },
                   "Offset whose content this whole dedup unit holds, or None.")
      .def_prop_ro("stale_generation",
                   [](const dgen::Mismatch& x) -> std::optional<uint64_t> {
                     if (x.stale_generation < 0) return std::nullopt;
                     return uint64_t(x.stale_generation);
                   },
                   "The older generation whose content this whole unit holds (a lost "
                   "write), or None.")
      .def("__repr__", [](const dgen::Mismatch& x) {
        std::string r = "Mismatch(offset=" + std::to_string(x.offset) +
                        ", length=" + std::to_string(x.length);
        if (x.zeros) r += ", zeros=True";
        if (x.belongs_at >= 0) r += ", belongs_at=" + std::to_string(x.belongs_at);
        if (x.stale_generation >= 0)
          r += ", stale_generation=" + std::to_string(x.stale_generation);
        return r + ")";
      });

  nb::class_<dgen::VerifyResult>(m, "VerifyResult", "The outcome of Generator.verify().")
      .def_prop_ro("ok", &dgen::VerifyResult::ok, "True when every byte matched.")
      .def_ro("bytes", &dgen::VerifyResult::bytes, "Bytes compared.")
      .def_ro("mismatched_bytes", &dgen::VerifyResult::mismatched_bytes)
      .def_ro("range_count", &dgen::VerifyResult::range_count, "Every mismatching range found.")
      .def_ro("ranges", &dgen::VerifyResult::ranges, "The first max_ranges ranges, in order.")
      .def("__repr__", [](const dgen::VerifyResult& r) {
        return "VerifyResult(ok=" + std::string(r.ok() ? "True" : "False") +
               ", bytes=" + std::to_string(r.bytes) +
               ", mismatched_bytes=" + std::to_string(r.mismatched_bytes) +
               ", range_count=" + std::to_string(r.range_count) + ")";
      });

  m.def("topology", [] {
    const dgen::Topology& t = dgen::Topology::get();
    nb::list nodes;
    for (const dgen::NumaNode& n : t.nodes) {
      nb::dict d;
      d["id"] = n.id;
      d["cpus"] = n.cpus;
      d["memory_bytes"] = n.memory_bytes;
      nodes.append(d);
    }
    nb::dict d;
    d["nodes"] = nodes;
    d["physical_cores"] = t.physical_cores;
    d["logical_cpus"] = t.logical_cpus;
    d["source"] = t.source;
    d["can_bind"] = t.can_bind;
    return d;
  }, "The machine's topology (hwloc when built with it), detected once per process.");
  m.def("worker_plan",
        [](const std::string& numa_mode, std::optional<unsigned> numa_node, unsigned threads) {
          const auto plan = dgen::plan_workers(dgen::Topology::get(),
                                               dgen::parse_numa_mode(numa_mode), numa_node,
                                               threads, dgen::allowed_cpus());
          nb::dict d;
          d["threads"] = plan.threads;
          d["cpusets"] = plan.cpusets;
          return d;
        },
        "numa_mode"_a = "auto", "numa_node"_a = nb::none(), "threads"_a = 0,
        "Where the workers of a call would run: worker i on cpusets[i % len] (none: unbound).");
  m.def("memory_headroom", [] {
    const dgen::MemoryHeadroom h = dgen::memory_headroom();
    nb::dict d;
    d["available"] = h.bytes == UINT64_MAX ? nb::none() : nb::cast(h.bytes);
    d["limited_by"] = h.limited_by;
    d["readings"] = h.readings;
    return d;
  }, "What may still be allocated and the limit that says so (see dgen/memory.hpp).");
  m.def("check_memory", [](uint64_t bytes) { dgen::check_memory(bytes); }, "bytes"_a,
        "Raises MemoryError naming the limit when `bytes` cannot be had.");
  m.def("uniform_f32",
        [](uint64_t count, float low, float high, uint64_t seed, unsigned threads,
           const std::string& numa_mode) {
          return float_view(count, threads, numa_mode, [&](std::span<float> v, auto& o) {
            dgen::uniform_f32(seed, 0, v, low, high, o);
          });
        },
        "count"_a, "low"_a, "high"_a, "seed"_a, "threads"_a = 0, "numa_mode"_a = "auto",
        "Values [0, count) of the uniform float32 stream of `seed`, as a BytesView.");
  m.def("uniform_vectors",
        [](uint64_t rows, uint64_t dim, float low, float high, bool normalize, uint64_t seed,
           unsigned threads, const std::string& numa_mode) {
          if (dim != 0 && rows > dgen::kMaxSize / 4 / dim)
            throw nb::value_error("rows * dim must be at most 2^61 - 1 values");
          return float_view(rows * dim, threads, numa_mode, [&](std::span<float> v, auto& o) {
            dgen::uniform_vectors(seed, v, dim, low, high, normalize, o);
          });
        },
        "rows"_a, "dim"_a, "low"_a, "high"_a, "normalize"_a, "seed"_a, "threads"_a = 0,
        "numa_mode"_a = "auto", "rows x dim uniform float32 values, rows L2-normalized.");
  m.def("normalize_rows", &normalize_buffer, "buffer"_a.none(), "dim"_a, "threads"_a = 0,
        "Scales each row of `dim` float32 values in the buffer to unit L2 norm, in place.");
  m.def("fill_tensor", &fill_tensor_buffer, "buffer"_a, "dtype"_a, "dist"_a, "low"_a, "high"_a,
        "mean"_a, "std"_a, "first"_a, "count"_a, "exponent"_a, "seed"_a, "start"_a,
        "threads"_a = 0,
        "Fills the buffer with elements [start, ...) of a typed tensor stream (dgen/tensor.hpp).");
  m.def("normalize_rows_f64", &normalize_f64_buffer, "buffer"_a, "dim"_a, "threads"_a = 0,
        "normalize_rows for rows of float64 values, in place.");
  m.def("use_crc32c", &use_crc32c, "path"_a,
        "Takes crc32c_extend() from the shared object at path (or what it links: Google's "
        "CRC32C library) for Stream.write_tfrecords.");
  m.def("write_chunk", &dgen::write_chunk, "Bytes per write: a chunk that fits in the L2 cache.");
  m.def("write_memory", [](unsigned threads, bool pipe) {
    return dgen::write_memory({.chunk = pipe ? dgen::kPipeChunk : 0}, {.threads = threads});
  }, "threads"_a, "pipe"_a = false,
        "Bytes of buffer one Stream.write() holds with `threads` threads (into a pipe: pipe).");
  m.def("byte_histogram", [](nb::handle buf) {
    Buffer b(buf, /*writable=*/false);
    std::array<uint64_t, 256> counts{};
    {
      const Released unlocked;  // parks at interpreter exit (protocol.cpp)
      dgen::add_byte_histogram({b.data(), b.size()}, counts);
    }
    return counts;
  }, "buffer"_a, "The count of each byte value 0..255 in the buffer (any C-contiguous one).");
  m.def("isa", &dgen::isa_name, "The SIMD path in use: 'scalar', 'avx2' or 'avx512'.");
  m.def("set_isa", [](const std::string& isa) { dgen::set_isa(isa); }, "isa"_a,
        "Chooses the SIMD path, over DGEN_ISA: 'scalar', 'avx2' or 'avx512' (ValueError for "
        "one unknown or not usable here). Never changes the bytes.");
  m.def("available_cpus", &dgen::available_cpus,
        "CPUs in this process's affinity mask (taskset, cgroup cpusets).");
}
