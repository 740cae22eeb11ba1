# The two commands of the README: `make run` and `make test`. Everything else is a helper.
JOBS ?= $(shell nproc)
HOST ?= 127.0.0.1
PORT ?= 3000
RELEASE_DIR := build/release
TEST_DIR := build/asan
BENCH_DIR := build/bench
# ThreadSanitizer (clang, which also checks the lock annotations): the suites that run threads,
# with the binary they spawn. cmake/thread_checks.cmake says more.
TSAN_DIR := build/tsan
TSAN_SUITES := server http expose integration
CMAKE_COMMON := -G Ninja -DCMAKE_EXPORT_COMPILE_COMMANDS=ON

.PHONY: run test build build-test build-tsan deps format clean install bench fuzz fuzz-build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(RELEASE_DIR) $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(RELEASE_DIR) -j $(JOBS) --target fleetwatch

# The embedded defaults include Prometheus metrics at /metrics (unless the caller set the switch).
run: export DSTACK_ENABLE_PROMETHEUS_METRICS ?= 1
run: build
	@$(RELEASE_DIR)/fleetwatch server --host $(HOST) --port $(PORT)

build-test: deps
	@cmake -S . -B $(TEST_DIR) $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Debug -DFLEETWATCH_SANITIZE=ON >/dev/null
	@cmake --build $(TEST_DIR) -j $(JOBS)

build-tsan: deps
	@cmake -S . -B $(TSAN_DIR) $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-14 \
		-DFLEETWATCH_TSAN=ON >/dev/null
	@cmake --build $(TSAN_DIR) -j $(JOBS) --target $(TSAN_SUITES:%=tests/%/all) fleetwatch-test-postgres

# The Release binary is built too, so CI proves that `make run` builds (optimized builds warn
# differently). Then the TSan suites (labelled by their tests/ directory): every process writes
# its race reports to $(TSAN_DIR)/reports, the servers and agents that the tests spawn included,
# and any report fails the run. Then each fuzz target for FUZZ_TEST_SECONDS.
test: build-test build build-tsan fuzz-build
	@cd $(TEST_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300
	@rm -rf $(TSAN_DIR)/reports && mkdir -p $(TSAN_DIR)/reports
	@cd $(TSAN_DIR) && TSAN_OPTIONS="log_path=$(CURDIR)/$(TSAN_DIR)/reports/race \
		suppressions=$(CURDIR)/cmake/tsan_suppressions.txt" \
		ctest --output-on-failure -j $(JOBS) --timeout 300 \
		-L '^($(subst $(eval) ,|,$(TSAN_SUITES)))$$'; status=$$?; \
		if ls reports/race.* >/dev/null 2>&1; then cat reports/race.*; exit 1; fi; exit $$status
	@bash fuzz/run.sh $(FUZZ_DIR) $(FUZZ_TEST_SECONDS) $(JOBS)

# libFuzzer targets (fuzz/README.md): a clang build of their own. `make test` runs each for
# FUZZ_TEST_SECONDS so they stay alive; `make fuzz` for FUZZ_SECONDS, keeping what it finds in
# $(FUZZ_DIR)/work.
FUZZ_DIR := build/fuzz
FUZZ_SECONDS ?= 600
FUZZ_TEST_SECONDS ?= 20
fuzz-build: deps
	@CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_DIR) $(CMAKE_COMMON) -DFLEETWATCH_FUZZ=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz_targets

fuzz: fuzz-build
	@bash fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(JOBS)

# Benchmarks (bench/README.md): a Release build of their own, then their figures.
bench:
	@bash scripts/install-deps.sh --bench
	@cmake -S . -B $(BENCH_DIR) $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Release -DFLEETWATCH_BENCH=ON \
		>/dev/null
	@cmake --build $(BENCH_DIR) -j $(JOBS) --target fleetwatch fleetwatch-sim-agents \
		fleetwatch-collector-bench fleetwatch-exposition-bench fleetwatch-control-bench \
		fleetwatch-memory-bench
	@$(BENCH_DIR)/bench/fleetwatch-collector-bench
	@$(BENCH_DIR)/bench/fleetwatch-control-bench
	@$(BENCH_DIR)/bench/fleetwatch-exposition-bench
	@$(BENCH_DIR)/bench/fleetwatch-memory-bench

install: build
	@cmake --install $(RELEASE_DIR) --prefix /usr/local

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf build
