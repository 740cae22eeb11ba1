// The README's first steps, run as written: the server started as `make run` starts it (the
// built binary, a fresh HOME, any free port), then each line of the README's first command block
// in a shell, from a directory where build/release/fleetwatch is the built binary. A trailing
// comment on a `fleetwatch` line is output the README promises; it must be in what the line
// prints.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace fs = std::filesystem;

struct ReadmeLine {
  std::string command;
  std::string promised;  // the trailing comment of a `fleetwatch` line; may be empty
};

// The lines of the first ```sh block that runs `fleetwatch` commands.
std::vector<ReadmeLine> FirstStepsBlock(const std::string& readme) {
  std::istringstream in(readme);
  std::string line;
  std::vector<ReadmeLine> block;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside) {
      inside = line == "```sh";
      block.clear();
      continue;
    }
    if (line == "```") {
      bool runs_the_cli = false;
      for (const ReadmeLine& l : block) runs_the_cli |= l.command.rfind("fleetwatch ", 0) == 0;
      if (runs_the_cli) return block;
      inside = false;
      continue;
    }
    if (line.empty()) continue;
    ReadmeLine parsed{line, ""};
    // A comment starts at "  #" (two spaces or more keep it apart from the command).
    if (size_t hash = line.find("  #"); hash != std::string::npos) {
      parsed.command = line.substr(0, line.find_last_not_of(' ', hash) + 1);
      std::string comment = line.substr(line.find('#', hash) + 1);
      comment.erase(0, comment.find_first_not_of(' '));
      if (parsed.command.rfind("fleetwatch ", 0) == 0) parsed.promised = comment;
    }
    block.push_back(parsed);
  }
  return {};
}

TEST(Readme, TheFirstStepsWorkAsWritten) {
  const std::string readme = ReadFile(FLEETWATCH_README);
  ASSERT_FALSE(readme.empty()) << FLEETWATCH_README;
  // What `make run` runs.
  static const std::regex kMakeRun(
      R"(\$\(RELEASE_DIR\)/fleetwatch server --host \$\(HOST\) --port \$\(PORT\))");
  ASSERT_TRUE(std::regex_search(ReadFile(FLEETWATCH_MAKEFILE), kMakeRun))
      << "make run no longer starts the server as this test does";
  const std::vector<ReadmeLine> steps = FirstStepsBlock(readme);
  ASSERT_GE(steps.size(), 2u) << "no ```sh block with fleetwatch commands in the README";

  TempDir home;
  TempDir work;  // the checkout, as far as the README's lines can tell
  fs::create_directories(work.path() / "build" / "release");
  fs::create_symlink(FLEETWATCH_BINARY, work.path() / "build" / "release" / "fleetwatch");
  ::chmod(home.path().c_str(), 0711);
  const std::map<std::string, std::string> env = {
      {"HOME", home.str()},
      {"FLEETWATCH_SERVER_ADMIN_TOKEN", "\x01unset"},
      {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"},
      {"FLEETWATCH_POLL_INTERVAL_MS", "200"},
      {"DSTACK_ENABLE_PROMETHEUS_METRICS", "1"}};
  ChildProcess server(FLEETWATCH_BINARY, {"server", "--host", "127.0.0.1", "--port", "0"}, env);
  ASSERT_TRUE(server.WaitForOutput("fleetwatch server listening on", 60)) << server.Output();
  // What the README says the first start does.
  EXPECT_NE(server.Output().find("The admin token is "), std::string::npos) << server.Output();
  EXPECT_TRUE(fs::exists(home.path() / ".fleetwatch" / "config.yml")) << server.Output();

  std::string exports;  // earlier `export` lines hold for later ones, as in one terminal
  for (const ReadmeLine& step : steps) {
    SCOPED_TRACE(step.command);
    const std::string script = "cd '" + work.str() + "' && " + exports + step.command;
    ProcessResult r = RunProcess("/bin/sh", {"-c", script}, env, "", 120);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << "\nserver:\n" << server.Output();
    if (!step.promised.empty()) {
      EXPECT_NE(r.out.find(step.promised), std::string::npos)
          << "the README promises \"" << step.promised << "\"; it printed:\n"
          << r.out << r.err;
    }
    if (step.command.rfind("export ", 0) == 0) exports += step.command + " && ";
  }
  EXPECT_EQ(server.Stop(SIGTERM, 60), 0) << server.Output();
}

}  // namespace
}  // namespace fleetwatch::testing
