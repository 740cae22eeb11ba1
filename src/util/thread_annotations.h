#pragma once

// Lock annotations for clang's thread-safety analysis (-Wthread-safety, on in every clang build;
// see cmake/thread_checks.cmake). The compiler then proves that each FW_GUARDED_BY member is
// touched only with its mutex held and that each FW_REQUIRES function is called with it held.
// GCC has no such analysis: there they expand to nothing.
//
// Use them with fleetwatch::Mutex and MutexLock (util/mutex.h); std::mutex and std::lock_guard
// carry no annotations in libstdc++, so the analysis cannot see them.
//
//   class Counter {
//    public:
//     void Add() FW_EXCLUDES(mu_) { MutexLock lock(mu_); AddLocked(); }
//    private:
//     void AddLocked() FW_REQUIRES(mu_) { ++n_; }
//     Mutex mu_;
//     int n_ FW_GUARDED_BY(mu_) = 0;
//   };

#if defined(__clang__)
#define FW_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define FW_THREAD_ANNOTATION_(x)
#endif

// A class that is a lock (a capability named `x`, e.g. "mutex").
#define FW_CAPABILITY(x) FW_THREAD_ANNOTATION_(capability(x))
// An RAII class that holds a capability from its constructor to its destructor.
#define FW_SCOPED_CAPABILITY FW_THREAD_ANNOTATION_(scoped_lockable)
// A member read and written only with `x` held.
#define FW_GUARDED_BY(x) FW_THREAD_ANNOTATION_(guarded_by(x))
// A pointer member whose pointee is read and written only with `x` held.
#define FW_PT_GUARDED_BY(x) FW_THREAD_ANNOTATION_(pt_guarded_by(x))
// A function that the caller must call with these held (and that returns with them held).
#define FW_REQUIRES(...) FW_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
// A function that takes these (or, without arguments, `this`) and returns with them held.
#define FW_ACQUIRE(...) FW_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
// A function that releases these (or `this`), which the caller held.
#define FW_RELEASE(...) FW_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
// A function that takes the capability when it returns `result`.
#define FW_TRY_ACQUIRE(...) FW_THREAD_ANNOTATION_(try_acquire_capability(__VA_ARGS__))
// A function that must not be called with these held (it takes them itself).
#define FW_EXCLUDES(...) FW_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
// A function that returns only when the caller holds these (e.g. Mutex::AssertHeld()).
#define FW_ASSERT_CAPABILITY(...) FW_THREAD_ANNOTATION_(assert_capability(__VA_ARGS__))
// A function that returns (a reference to) the capability `x`.
#define FW_RETURN_CAPABILITY(x) FW_THREAD_ANNOTATION_(lock_returned(x))
// A function the analysis skips: for lock patterns it cannot follow. Say why where it is used.
#define FW_NO_THREAD_SAFETY_ANALYSIS FW_THREAD_ANNOTATION_(no_thread_safety_analysis)
