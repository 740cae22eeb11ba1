#include "util/signals.h"

#include <pthread.h>
#include <signal.h>

namespace fleetwatch {
namespace {

sigset_t TerminationSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

TerminationSignals::TerminationSignals() {
  sigset_t set = TerminationSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

const char* TerminationSignals::Wait() const {
  sigset_t set = TerminationSet();
  int received = 0;
  while (sigwait(&set, &received) != 0) {
  }
  return received == SIGTERM ? "SIGTERM" : "SIGINT";
}

}  // namespace fleetwatch
