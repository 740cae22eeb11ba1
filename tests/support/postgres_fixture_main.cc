// The ctest fixture of the PostgreSQL tests: `start FILE` starts one cluster for the whole ctest
// run and describes it in FILE; `stop FILE` stops it and removes it. Without PostgreSQL
// installed, `start` writes nothing and succeeds: the tests then skip as they say.
#include <cstdio>
#include <string>

#include "support/postgres_cluster.h"

int main(int argc, char** argv) {
  using fleetwatch::testing::PostgresCluster;
  const std::string usage = "usage: fleetwatch-test-postgres start|stop FILE\n";
  if (argc != 3) {
    std::fputs(usage.c_str(), stderr);
    return 2;
  }
  const std::string command = argv[1];
  const std::string file = argv[2];
  std::string error;
  if (command == "start") {
    if (PostgresCluster::FindBinDir().empty()) {
      std::printf("PostgreSQL is not installed: no shared cluster\n");
      return PostgresCluster::StopDetached(file, &error) ? 0 : 1;
    }
    if (!PostgresCluster::StartDetached(file, &error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    std::printf("PostgreSQL started for this run: %s\n", file.c_str());
    return 0;
  }
  if (command == "stop") {
    if (!PostgresCluster::StopDetached(file, &error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    return 0;
  }
  std::fputs(usage.c_str(), stderr);
  return 2;
}
