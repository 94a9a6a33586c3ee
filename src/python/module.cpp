// dgen_py._core: argument conversion, buffer checks, GIL release. No logic of its own.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "dgen/dgen.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

// A caller's buffer, held for the length of one call; must be writable and C-contiguous.
class WritableBuffer {
 public:
  explicit WritableBuffer(nb::handle obj) {
    if (!PyObject_CheckBuffer(obj.ptr()))
      throw nb::type_error(("expected a writable buffer (bytearray, memoryview, numpy array, "
                            "mmap, array.array), got " +
                            std::string(Py_TYPE(obj.ptr())->tp_name))
                               .c_str());
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_FULL_RO) != 0) throw nb::python_error();
    if (view_.readonly) {
      PyBuffer_Release(&view_);
      throw nb::value_error("buffer is read-only; pass a writable one such as a bytearray");
    }
    if (!PyBuffer_IsContiguous(&view_, 'C')) {
      PyBuffer_Release(&view_);
      throw nb::value_error("buffer is not C-contiguous; pass a contiguous array or a copy");
    }
  }
  ~WritableBuffer() { PyBuffer_Release(&view_); }
  WritableBuffer(const WritableBuffer&) = delete;
  WritableBuffer& operator=(const WritableBuffer&) = delete;

  uint8_t* data() const { return static_cast<uint8_t*>(view_.buf); }
  uint64_t size() const { return uint64_t(view_.len); }

 private:
  Py_buffer view_{};
};

// Read-only, zero-copy bytes produced by the generator (page-aligned memory).
class BytesView {
 public:
  explicit BytesView(uint64_t n) : size_(n) {
    const uint64_t bytes = (std::max<uint64_t>(n, 1) + 4095) & ~uint64_t{4095};
    data_.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, bytes)));
    if (!data_) throw std::bad_alloc();
  }
  uint8_t* data() { return data_.get(); }
  uint64_t size() const { return size_; }

  static int getbuffer(PyObject* self, Py_buffer* view, int flags) {
    BytesView* bv = nb::inst_ptr<BytesView>(self);
    return PyBuffer_FillInfo(view, self, bv->data(), Py_ssize_t(bv->size()), 1, flags);
  }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  uint64_t size_;
};

PyType_Slot bytesview_slots[] = {{Py_bf_getbuffer, (void*)BytesView::getbuffer}, {0, nullptr}};

// Fills a claimed range. Large calls release the GIL and go in slices, checking for
// Ctrl-C between them so a multi-gigabyte call still stops within a fraction of a second.
void fill_claim(const dgen::Stream::Claim& c, uint8_t* out, const dgen::FillOptions& opt) {
  constexpr uint64_t kKeepGil = 256 * 1024, kSlice = 64ull << 20;
  if (c.length <= kKeepGil) {
    dgen::fill(c.dataset, c.offset, {out, c.length}, opt);
    return;
  }
  for (uint64_t done = 0; done < c.length;) {
    const uint64_t n = std::min(kSlice, c.length - done);
    {
      nb::gil_scoped_release unlocked;
      dgen::fill(c.dataset, c.offset + done, {out + done, n}, opt);
    }
    done += n;
    if (PyErr_CheckSignals() != 0) throw nb::python_error();
  }
}

uint64_t stream_fill(dgen::Stream& s, nb::handle buf) {
  WritableBuffer b(buf);
  const auto c = s.claim(b.size());
  fill_claim(c, b.data(), s.options());
  return c.length;
}

nb::object stream_read(dgen::Stream& s, uint64_t n) {
  const auto c = s.claim(n);
  auto* bv = new BytesView(c.length);
  nb::object owner = nb::cast(bv, nb::rv_policy::take_ownership);
  fill_claim(c, bv->data(), s.options());
  return owner;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "dgen core: synthetic data with exact dedup and compression ratios";
  m.attr("FORMAT_VERSION") = dgen::kFormatVersion;
  m.attr("MAX_DEDUP_RATIO") = dgen::kMaxDedupRatio;
  m.attr("MAX_COMPRESS_RATIO") = dgen::kMaxCompressRatio;

  nb::class_<BytesView>(m, "BytesView", nb::type_slots(bytesview_slots),
                        "Read-only bytes from the generator; supports the buffer protocol "
                        "(memoryview, numpy.frombuffer, bytes()) without copying.")
      .def("__len__", &BytesView::size)
      .def("__bytes__", [](BytesView& v) {
        return nb::bytes(reinterpret_cast<const char*>(v.data()), v.size());
      })
      .def("tobytes", [](BytesView& v) {
        return nb::bytes(reinterpret_cast<const char*>(v.data()), v.size());
      })
      .def("__repr__", [](BytesView& v) { return "BytesView(" + std::to_string(v.size()) + " bytes)"; });

  nb::class_<dgen::Stream>(m, "Stream")
      .def("__init__",
           [](dgen::Stream* self, uint64_t size, double dedup_ratio, double compress_ratio,
              uint64_t seed, uint64_t dedup_unit, unsigned threads, uint64_t block_size) {
             dgen::Params p{seed, size, dedup_ratio, compress_ratio, dedup_unit};
             new (self) dgen::Stream(p, dgen::FillOptions{threads, block_size});
           },
           "size"_a, "dedup_ratio"_a, "compress_ratio"_a, "seed"_a, "dedup_unit"_a,
           "threads"_a, "block_size"_a)
      .def("fill", &stream_fill, "buf"_a)
      .def("read", &stream_read, "n"_a)
      .def("seek", &dgen::Stream::seek, "offset"_a)
      .def("set_seed", &dgen::Stream::set_seed, "seed"_a)
      .def_prop_ro("position", &dgen::Stream::position)
      .def_prop_ro("size", &dgen::Stream::size)
      .def_prop_ro("seed", &dgen::Stream::seed)
      .def_prop_ro("unique_units", [](dgen::Stream& s) { return s.dataset().unique_count(); })
      .def_prop_ro("units", [](dgen::Stream& s) { return s.dataset().unit_count(); });

  m.def("isa", &dgen::isa_name, "The SIMD path in use: 'scalar' or 'avx2'.");
  m.def("available_cpus", &dgen::available_cpus,
        "CPUs in this process's affinity mask (taskset, cgroup cpusets).");
}
