// dgen_py._core: argument conversion, buffer checks, GIL release. No logic of its own.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "dgen/dgen.hpp"
#include "dgen/io.hpp"
#include "dgen/memory.hpp"
#include "dgen/topology.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

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

// Calls this small that run on the calling thread keep the GIL: releasing it would cost
// more than the work. Every call that may wait for the worker pool releases it, since a
// running job polls for Ctrl-C under the GIL.
constexpr uint64_t kKeepGil = 256 * 1024;

// At interpreter exit a daemon thread inside a call must not take the GIL again (Python
// would end the thread by unwinding through frames that cannot be unwound): an atexit hook
// stops running calls and waits until they have given their threads back to Python.
std::atomic<bool> shutting_down{false};
std::atomic<int> calls_in_flight{0};

void stop_calls_at_exit() {
  shutting_down = true;
  nb::gil_scoped_release unlocked;
  for (int i = 0; i < 5000 && calls_in_flight > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

dgen::FillOptions interruptible(dgen::FillOptions opt) {
  opt.interrupted = [] {
    if (shutting_down) return true;
    nb::gil_scoped_acquire gil;
    return PyErr_CheckSignals() != 0;  // leaves KeyboardInterrupt set for the caller
  };
  return opt;
}

// Runs a core call on [offset, offset + bytes), without the GIL unless it is small and
// stays on this thread; a signal's exception propagates.
template <class F>
auto run_released(uint64_t offset, uint64_t bytes, const dgen::FillOptions& opt, F&& call) {
  if (bytes <= kKeepGil && dgen::runs_on_caller(offset, bytes, opt)) return call(opt);
  if (shutting_down) throw std::runtime_error("dgen: the interpreter is shutting down");
  struct InFlight {  // ends after the GIL is back
    InFlight() { ++calls_in_flight; }
    ~InFlight() { --calls_in_flight; }
  } in_flight;
  try {
    nb::gil_scoped_release unlocked;
    return call(interruptible(opt));
  } catch (const dgen::Interrupted&) {
    if (!PyErr_Occurred()) throw std::runtime_error("dgen: the interpreter is shutting down");
    throw nb::python_error();
  }
}

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
  Buffer b(buf, /*writable=*/true);
  const auto c = s.claim(b.size());
  fill_claim(s, c, b.data());
  return c.length;
}

nb::object stream_read(dgen::Stream& s, uint64_t n) {
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

dgen::VerifyResult stream_verify(dgen::Stream& s, nb::handle buf, uint64_t offset,
                                 size_t max_ranges) {
  Buffer b(buf, /*writable=*/false);
  const dgen::Dataset ds = s.dataset_copy();
  return run_released(offset, b.size(), s.options(), [&](const dgen::FillOptions& o) {
    return dgen::verify(ds, offset, {b.data(), b.size()}, o, max_ranges);
  });
}

// A Verifier shared by Python threads. add() may run without the GIL while it holds the
// lock, and then takes the GIL now and then to check for Ctrl-C: so a thread never waits
// for the lock while it holds the GIL.
struct PyVerifier {
  dgen::Verifier v;
  dgen::FillOptions opt;
  std::mutex mu;

  std::unique_lock<std::mutex> lock() {
    std::unique_lock l(mu, std::try_to_lock);
    if (!l.owns_lock()) {
      nb::gil_scoped_release unlocked;
      l.lock();
    }
    return l;
  }
};

PyVerifier* stream_verifier(dgen::Stream& s, size_t max_ranges) {
  return new PyVerifier{dgen::Verifier(s.dataset_copy(), max_ranges), s.options(), {}};
}

void verifier_add(PyVerifier& pv, nb::handle buf, uint64_t offset) {
  Buffer b(buf, /*writable=*/false);
  const auto lock = pv.lock();
  run_released(offset, b.size(), pv.opt, [&](const dgen::FillOptions& o) {
    pv.v.add(offset, {b.data(), b.size()}, o);
  });
}

// Writes stream bytes [offset, offset + length) to fd without the GIL; tick(n) is called
// with the GIL every few tens of milliseconds with the bytes written since, and a true
// result (or an exception) stops the write. Returns the bytes written.
uint64_t stream_write(dgen::Stream& s, int fd, uint64_t offset, uint64_t length,
                      int64_t file_offset, bool direct, uint64_t chunk, nb::object tick) {
  const dgen::Dataset ds = s.dataset_copy();
  dgen::WriteTarget t{fd, file_offset, direct, chunk, {}};
  if (!tick.is_none())
    t.progress = [&tick](uint64_t n) {
      nb::gil_scoped_acquire gil;
      try {
        const int stop = PyObject_IsTrue(tick(n).ptr());
        if (stop < 0) throw nb::python_error();
        return stop == 0;
      } catch (nb::python_error& e) {
        e.restore();  // raised once the GIL is back
        return false;
      }
    };
  if (shutting_down) throw std::runtime_error("dgen: the interpreter is shutting down");
  struct InFlight {
    InFlight() { ++calls_in_flight; }
    ~InFlight() { --calls_in_flight; }
  } in_flight;
  uint64_t done;
  try {
    nb::gil_scoped_release unlocked;
    done = dgen::write_range(ds, offset, length, t, interruptible(s.options()));
  } catch (const dgen::Interrupted&) {
    if (!PyErr_Occurred()) throw std::runtime_error("dgen: the interpreter is shutting down");
    throw nb::python_error();
  }
  if (PyErr_Occurred()) throw nb::python_error();
  return done;
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
  nb::module_::import_("atexit").attr("register")(nb::cpp_function(&stop_calls_at_exit));
  // Objects held by daemon threads at exit are not leaks worth a warning.
  nb::set_leak_warnings(false);
  m.attr("FORMAT_VERSION") = dgen::kFormatVersion;
  m.attr("MIN_FORMAT_VERSION") = dgen::kMinFormatVersion;
  m.attr("WINDOW_UNITS") = dgen::kWindowUnits;
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
              int format_version) {
             dgen::Params p{seed, size, dedup_ratio, compress_ratio, dedup_unit, format_version};
             dgen::FillOptions opt{.threads = threads,
                                   .block_size = block_size,
                                   .numa_mode = dgen::parse_numa_mode(numa_mode),
                                   .numa_node = numa_node};
             new (self) dgen::Stream(p, opt);
           },
           "size"_a, "dedup_ratio"_a, "compress_ratio"_a, "seed"_a, "dedup_unit"_a,
           "threads"_a, "block_size"_a, "numa_mode"_a = "auto", "numa_node"_a = nb::none(),
           "format_version"_a = dgen::kFormatVersion)
      // Buffer arguments take None too, so that Buffer's error says what a buffer is.
      .def("fill", &stream_fill, "buf"_a.none())
      .def("read", &stream_read, "n"_a)
      .def("verify", &stream_verify, "buf"_a.none(), "offset"_a, "max_ranges"_a = 20)
      .def("verifier", &stream_verifier, "max_ranges"_a = 20, nb::rv_policy::take_ownership)
      .def("write", &stream_write, "fd"_a, "offset"_a, "length"_a, "file_offset"_a = -1,
           "direct"_a = false, "chunk"_a = 0, "tick"_a = nb::none(),
           "Writes dataset bytes [offset, offset + length) to fd at file_offset (-1: write() "
           "at its position); tick(n) every few tens of ms, a true result stops.")
      .def("seek", &dgen::Stream::seek, "offset"_a)
      .def("set_seed", &dgen::Stream::set_seed, "seed"_a)
      .def_prop_ro("position", &dgen::Stream::position)
      .def_prop_ro("size", &dgen::Stream::size)
      .def_prop_ro("seed", &dgen::Stream::seed)
      .def_prop_ro("unique_units", [](dgen::Stream& s) { return s.dataset_copy().unique_count(); })
      .def_prop_ro("format_version",
                   [](dgen::Stream& s) { return s.dataset_copy().params().format_version; })
      .def("unique_id", [](dgen::Stream& s, uint64_t unit) {
             const dgen::Dataset ds = s.dataset_copy();
             if (unit >= ds.unit_count())
               throw std::out_of_range("unit must be in [0, " + std::to_string(ds.unit_count()) +
                                       "), got " + std::to_string(unit));
             return ds.unique_id(unit);
           }, "unit"_a);

  nb::class_<PyVerifier>(m, "Verifier",
                         "verify() over data that arrives in pieces, in offset order.")
      .def("add", &verifier_add, "buf"_a.none(), "offset"_a)
      .def_prop_ro("result", [](PyVerifier& pv) {
        const auto lock = pv.lock();
        return pv.v.result();
      });

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
      .def("__repr__", [](const dgen::Mismatch& x) {
        std::string r = "Mismatch(offset=" + std::to_string(x.offset) +
                        ", length=" + std::to_string(x.length);
        if (x.zeros) r += ", zeros=True";
        if (x.belongs_at >= 0) r += ", belongs_at=" + std::to_string(x.belongs_at);
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
  m.def("write_chunk", &dgen::write_chunk, "Bytes per write: a chunk that fits in the L2 cache.");
  m.def("write_memory", [](unsigned threads) {
    return dgen::write_memory({}, {.threads = threads});
  }, "threads"_a, "Bytes of buffer one Stream.write() holds with `threads` threads.");
  m.def("isa", &dgen::isa_name, "The SIMD path in use: 'scalar' or 'avx2'.");
  m.def("available_cpus", &dgen::available_cpus,
        "CPUs in this process's affinity mask (taskset, cgroup cpusets).");
}
