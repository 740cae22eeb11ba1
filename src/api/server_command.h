#pragma once

namespace CLI {
class App;
}

namespace fleetwatch::api {

// Adds `fleetwatch server [--host H] [--port P] [--data-dir DIR]` to `app`. The command runs the
// server until SIGTERM/SIGINT and stores its exit code in `exit_code` (which must outlive `app`).
void AddServerCommand(CLI::App& app, int& exit_code);

}  // namespace fleetwatch::api
