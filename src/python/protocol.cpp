// The protocol of dgen_py._core's calls with the interpreter, in one place: what each rule
// is and why. module.cpp holds only the bindings, and runs every call through this.
//
// Rules (the pool's own, and the fork protocol of every process-wide lock of
// the core, are at the top of src/core/pool.cpp). Each rule names the test in
// tests/python/test_concurrency.py that breaks it.
// - GIL: a call that may take more than a block, or needs the pool, releases the GIL
//   (Released) and polls for signals every 20 ms by taking it back briefly; smaller calls
//   keep it. No thread waits for a lock of ours while holding the GIL
//   [test_a_verifier_shared_by_threads_does_not_deadlock,
//   test_small_calls_do_not_deadlock_behind_a_busy_pool].
// - Pool: calls from several threads run at once [test_a_small_call_does_not_wait_for_
//   another_generators_large_one]; a failed or interrupted call gives its range back
//   [test_an_interrupted_or_failed_read_gives_its_range_back].
// - Verifier lock: held for a whole add() or `result`; waiting for it is done without the
//   GIL, retaking it every 20 ms to answer Ctrl-C [test_ctrl_c_interrupts_a_wait_for_a_
//   verifiers_lock]. A forked child replaces the lock on first use; a Verifier that another
//   thread held at the fork raises RuntimeError there, its state being unknown
//   [test_a_child_forked_while_a_verifier_is_locked_gets_a_clear_error].
// - A BufferPool's lock (Python's, python/dgen_py/_buffer_pool.py) is made anew in a forked
//   child, as the Verifier's is [test_a_child_forked_while_another_thread_holds_a_buffer_
//   pools_lock_can_use_the_pool].
// - In flight: calls_in_flight counts threads between releasing and retaking the GIL
//   (calls and lock waits). In a forked child it restarts at this thread's own count
//   [test_forks_under_load_never_hang_and_every_child_exits_promptly, test_a_child_forked_
//   while_a_verifier_is_locked_exits_promptly].
// - Exit: the atexit hook sets shutting_down and waits (up to 5 s) for calls in flight; the
//   polls of other threads then stop their calls, and every thread other than the exiting
//   one parks without the GIL instead of taking it back or starting a call (taking it
//   after finalization ends the thread by unwinding C++ frames: "terminate called without
//   an active exception"; raising printed tracebacks) [test_exit_with_daemon_threads_
//   sharing_a_verifier_and_a_generator_is_clean]. The exiting thread's calls still run
//   [test_the_exiting_threads_own_calls_still_run_in_atexit_handlers].
// - Signals: Python runs handlers in a poll, inside a call; a handler's dgen call would
//   wait for what that call holds, so any nested call raises RuntimeError naming both
//   [test_a_dgen_call_from_a_signal_handler_during_a_long_call_raises].
#include "protocol.hpp"

#include <pthread.h>

#include <atomic>
#include <new>
#include <string>
#include <thread>

namespace dgen::py {

namespace {

std::atomic<bool> shutting_down{false};
std::atomic<int> calls_in_flight{0};   // threads between releasing and retaking the GIL
thread_local int in_flight_here = 0;   // this thread's share of calls_in_flight
thread_local bool finalizing_here = false;  // this thread runs the interpreter's exit
thread_local const char* call_here = nullptr;  // the dgen call this thread is inside
uint64_t forks = 0;  // forks that led to this process (read and changed under the GIL)

// A thread that must not take the GIL again (the interpreter is exiting) waits here until
// the process ends, as CPython's own daemon threads do.
[[noreturn]] void park() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

bool stopping_this_thread() { return shutting_down && !finalizing_here; }

// Called with the GIL held, which shutting_down is set under: the check is exact.
void park_if_exiting() {
  if (!stopping_this_thread()) return;
  PyEval_SaveThread();
  park();
}

// Exit: stop the other threads' calls and wait (up to 5 s) for them to leave.
void stop_calls_at_exit() {
  shutting_down = true;
  finalizing_here = true;
  PyThreadState* state = PyEval_SaveThread();
  for (int i = 0; i < 5000 && calls_in_flight > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  PyEval_RestoreThread(state);
}

void after_fork_in_child() {
  calls_in_flight = in_flight_here;  // the other threads' calls do not exist here
  ++forks;
}

}  // namespace

void install_protocol() {
  nb::module_::import_("atexit").attr("register")(nb::cpp_function(&stop_calls_at_exit));
  pthread_atfork(nullptr, nullptr, &after_fork_in_child);
}

CallScope::CallScope(const char* name) {
  if (call_here)
    throw std::runtime_error(std::string("dgen: ") + name +
                             " was called from a signal handler during " + call_here +
                             " on the same thread; dgen calls cannot nest");
  park_if_exiting();  // a daemon thread's new call at exit
  call_here = name;
}

CallScope::~CallScope() { call_here = nullptr; }

Released::Released() {
  ++calls_in_flight;
  ++in_flight_here;
  state_ = PyEval_SaveThread();
}

void Released::reacquire() {
  if (!state_) return;
  if (stopping_this_thread()) {
    --calls_in_flight;
    park();
  }
  PyEval_RestoreThread(std::exchange(state_, nullptr));
  --in_flight_here;
  --calls_in_flight;
  park_if_exiting();  // the exit began while this thread waited for the GIL
}

dgen::FillOptions interruptible(dgen::FillOptions opt) {
  opt.interrupted = [] {
    if (stopping_this_thread()) return true;
    nb::gil_scoped_acquire gil;
    return PyErr_CheckSignals() != 0;  // leaves KeyboardInterrupt set for the caller
  };
  return opt;
}

void raise_interrupted(Released& unlocked) {
  unlocked.reacquire();
  if (!PyErr_Occurred()) throw std::runtime_error("dgen: the interpreter is shutting down");
  throw nb::python_error();
}

uint64_t PyVerifier::fork_epoch() { return forks; }

PyVerifier::Lock::Lock(PyVerifier& pv) : pv_(pv), lock_(pv.mu, std::defer_lock) {
  if (pv.epoch != forks) {  // first use in a forked child
    pv.epoch = forks;
    new (&pv.mu) std::timed_mutex;  // the parent's may be held by a thread not here
    pv.lost = pv.lost || pv.held;
    pv.held = false;
  }
  if (pv.lost)
    throw std::runtime_error(
        "dgen: this Verifier was in use by another thread when the process forked, so "
        "its state is unknown here; make a new one in the child");
  while (!lock_.try_lock()) {
    {
      Released unlocked;
      if (lock_.try_lock_for(kPollEvery)) break;
    }
    if (PyErr_CheckSignals() != 0) throw nb::python_error();
    if (shutting_down)  // the exiting thread: the holder is parked for good
      throw std::runtime_error("dgen: the interpreter is shutting down");
  }
  pv.held = true;
}

}  // namespace dgen::py
