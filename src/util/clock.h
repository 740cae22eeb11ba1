#pragma once

#include <atomic>
#include <cstdint>

namespace fleetwatch {

// Microseconds since the Unix epoch, UTC. Every stored timestamp uses this unit.
using TimeMicros = int64_t;

// Source of the current time, so tests can fake it. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMicros Now() const = 0;
};

// The real wall clock (system_clock).
class SystemClock final : public Clock {
 public:
  TimeMicros Now() const override;
  // A process-wide instance; never destroyed.
  static const Clock& Get();
};

// A clock that moves only when told. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimeMicros start) : now_(start) {}
  TimeMicros Now() const override { return now_.load(); }
  void Set(TimeMicros t) { now_.store(t); }
  void Advance(TimeMicros d) { now_.fetch_add(d); }

 private:
  std::atomic<TimeMicros> now_;
};

}  // namespace fleetwatch
