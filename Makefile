# The two commands of the README: `make run` and `make test`. Everything else is a helper.
JOBS ?= $(shell nproc)
HOST ?= 127.0.0.1
PORT ?= 3000
RELEASE_DIR := build/release
TEST_DIR := build/asan
BENCH_DIR := build/bench
CMAKE_COMMON := -G Ninja -DCMAKE_EXPORT_COMPILE_COMMANDS=ON

.PHONY: run test build build-test deps format clean install bench

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

# The Release binary is built too, so CI proves that `make run` builds (optimized builds warn
# differently).
test: build-test build
	@cd $(TEST_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300

# Benchmarks (bench/README.md): a Release build of their own, then their figures.
bench:
	@bash scripts/install-deps.sh --bench
	@cmake -S . -B $(BENCH_DIR) $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Release -DFLEETWATCH_BENCH=ON \
		>/dev/null
	@cmake --build $(BENCH_DIR) -j $(JOBS) --target fleetwatch fleetwatch-sim-agents \
		fleetwatch-collector-bench fleetwatch-exposition-bench fleetwatch-memory-bench
	@$(BENCH_DIR)/bench/fleetwatch-collector-bench
	@$(BENCH_DIR)/bench/fleetwatch-exposition-bench
	@$(BENCH_DIR)/bench/fleetwatch-memory-bench

install: build
	@cmake --install $(RELEASE_DIR) --prefix /usr/local

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf build
