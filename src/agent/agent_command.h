#pragma once

namespace CLI {
class App;
}

namespace fleetwatch::agent {

// Adds `fleetwatch agent [--host H] [--port P] [--token T] [--data-dir DIR]
// [--dcgm-exporter-port P] [--dcgm-interval-seconds S] [--dcgm-exporter-url URL] [--no-dcgm]
// [--tls-cert FILE --tls-key FILE | --no-tls] [--log-level L]` to `app`. The agent serves HTTPS
// (with the given certificate, else a self-signed one it makes in its data directory on first
// start) and prints the certificate's SHA-256 fingerprint, which also goes into
// <data-dir>/agent.json ("fingerprint"); --no-tls serves plain HTTP. The command serves the agent
// API until SIGTERM/SIGINT, then stops every running job and the dcgm-exporter it runs (see
// dcgm_exporter.h) and removes <data-dir>/agent.json; it stores its exit code in `exit_code` (which
// must outlive `app`).
void AddAgentCommand(CLI::App& app, int& exit_code);

}  // namespace fleetwatch::agent
