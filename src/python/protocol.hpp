// How dgen_py._core's calls live with the interpreter: the GIL, Ctrl-C, interpreter exit,
// fork and signal handlers. The rules and their reasons are written at the top of
// protocol.cpp; module.cpp's bindings run every core call through what is declared here.
#pragma once

#include <nanobind/nanobind.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "dgen/dgen.hpp"
#include "dgen/io.hpp"

namespace dgen::py {

namespace nb = nanobind;

// Calls this small that run on the calling thread keep the GIL: releasing it would cost
// more than the work.
inline constexpr uint64_t kKeepGil = 256 * 1024;
inline constexpr auto kPollEvery = std::chrono::milliseconds(20);

// Registers the exit hook (atexit) and the fork handler; once, at import.
void install_protocol();

// Marks this thread as inside one dgen call; a second one from a signal handler that runs
// during its poll would wait for what the first holds, so it is refused (RuntimeError).
class CallScope {
 public:
  explicit CallScope(const char* name);
  ~CallScope();
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;
};

// The GIL released for the scope, counted in calls in flight until it is taken back; at
// interpreter exit the thread parks instead of taking it back.
class Released {
 public:
  Released();
  ~Released() { reacquire(); }
  void reacquire();
  Released(const Released&) = delete;
  Released& operator=(const Released&) = delete;

 private:
  PyThreadState* state_;
};

// opt, polling for signals (and for the interpreter's exit) every few tens of ms.
dgen::FillOptions interruptible(dgen::FillOptions opt);

// After a call stopped by interruptible()'s poll: takes the GIL back and raises what the
// signal handler raised (KeyboardInterrupt), or RuntimeError at interpreter exit.
[[noreturn]] void raise_interrupted(Released& unlocked);

// Runs a core call on [offset, offset + bytes), without the GIL unless it is small and
// stays on this thread; a signal's exception propagates.
template <class F>
auto run_released(uint64_t offset, uint64_t bytes, const dgen::FillOptions& opt, F&& call) {
  if (bytes <= kKeepGil && dgen::runs_on_caller(offset, bytes, opt)) return call(opt);
  Released unlocked;
  try {
    return call(interruptible(opt));
  } catch (const dgen::Interrupted&) {
    raise_interrupted(unlocked);
  }
}

// Runs write(target, options) without the GIL; tick(n) is called with the GIL every few
// tens of milliseconds with the bytes written since, and a true result (or an exception)
// stops the write. Returns what write() does.
template <class Write>
uint64_t released_write(const dgen::FillOptions& opt, dgen::WriteTarget t, nb::object tick,
                        Write write) {
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
  uint64_t done;
  {
    Released unlocked;
    try {
      done = write(t, interruptible(opt));
    } catch (const dgen::Interrupted&) {
      raise_interrupted(unlocked);
    }
  }
  if (PyErr_Occurred()) throw nb::python_error();
  return done;
}

// A Verifier shared by Python threads: one add() or result at a time, under a lock that a
// forked child makes anew (protocol.cpp, "Verifier lock").
struct PyVerifier {
  dgen::Verifier v;
  dgen::FillOptions opt;
  std::timed_mutex mu;
  bool held = false;  // under mu: a thread is inside add() or result
  uint64_t epoch = fork_epoch();
  bool lost = false;  // held by another thread when the process forked into this one

  // Forks that led to this process (read and changed under the GIL).
  static uint64_t fork_epoch();

  class Lock {
   public:
    explicit Lock(PyVerifier& pv);
    ~Lock() { pv_.held = false; }  // then lock_ unlocks

   private:
    PyVerifier& pv_;
    std::unique_lock<std::timed_mutex> lock_;
  };
};

}  // namespace dgen::py
