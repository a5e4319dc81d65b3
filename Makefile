# Two commands: `make run` and `make test`. Both install missing Debian
# packages first (scripts/deps.sh, quiet when nothing is missing).
CC  := clang
CXX := clang++
export CC CXX
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
RELEASE_DIR := build/release
TEST_DIR := build/test
FUZZ_DIR := build/fuzz
CMAKE_COMMON := -DCMAKE_C_COMPILER=$(CC) -DCMAKE_CXX_COMPILER=$(CXX)
# Seconds each fuzz target runs inside `make test` (ctest label `fuzz`).
TEST_FUZZ_SECONDS ?= 30

.PHONY: all deps build run test test-configure unit fuzz bench clean install format

all: build

deps:
	@./scripts/deps.sh

$(RELEASE_DIR)/CMakeCache.txt:
	@cmake -S . -B $(RELEASE_DIR) $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Release -DSY_TESTS=OFF >/dev/null

build: deps $(RELEASE_DIR)/CMakeCache.txt
	@cmake --build $(RELEASE_DIR) -j $(JOBS) --target switchyard

run: build
	$(RELEASE_DIR)/daemon/switchyard $(ARGS)

test-configure:
	@cmake -S . -B $(TEST_DIR) $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Debug \
	  -DSY_ASAN=ON -DSY_UBSAN=ON -DSY_FUZZ=ON -DSY_BENCH=OFF \
	  -DSY_FUZZ_SECONDS=$(TEST_FUZZ_SECONDS) >/dev/null

test: deps test-configure
	@cmake --build $(TEST_DIR) -j $(JOBS)
	cd $(TEST_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

unit: deps test-configure
	@cmake --build $(TEST_DIR) -j $(JOBS)
	cd $(TEST_DIR) && ctest --output-on-failure -j $(JOBS) -L unit

fuzz: deps
	@cmake -S . -B $(FUZZ_DIR) $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DSY_ASAN=ON -DSY_UBSAN=ON -DSY_FUZZ=ON -DSY_BENCH=OFF -DSY_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS)
	cd $(FUZZ_DIR) && ctest --output-on-failure -L fuzz

bench: deps
	@cmake -S . -B build/bench $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Release -DSY_TESTS=OFF >/dev/null
	@cmake --build build/bench -j $(JOBS)

# ThreadSanitizer (issue 8): a Debug build in build/tsan, the daemon's unit
# tests and the integration tests that keep its threads busy (thread pool:
# scrypt, leaf mints; decision-log writer; c-ares; reload/reopen signals).
# Reports go to build/tsan/tsan-report.PID; any report fails the target.
.PHONY: tsan
tsan: deps
	@cmake -S . -B build/tsan $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Debug -DSY_TSAN=ON \
	  -DSY_BENCH=OFF >/dev/null
	@cmake --build build/tsan -j $(JOBS) --target switchyard daemon_tests certs_tests
	@rm -f build/tsan/tsan-report.*
	@export TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 \
	  second_deadlock_stack=1 log_path=$(CURDIR)/build/tsan/tsan-report"; status=0; \
	  build/tsan/tests/daemon_tests --gtest_brief=1 || status=1; \
	  build/tsan/tests/certs_tests --gtest_brief=1 || status=1; \
	  (cd tests/integration && SWITCHYARD_BIN=$(CURDIR)/build/tsan/daemon/switchyard \
	    SY_BUILD_DIR=$(CURDIR)/build/tsan PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m unittest \
	    test_threads test_intercept test_auth test_connect test_signals) || status=1; \
	  if ls build/tsan/tsan-report.* >/dev/null 2>&1; then \
	    cat build/tsan/tsan-report.*; echo "ThreadSanitizer reported the above" >&2; status=1; \
	  fi; exit $$status

# DESTDIR reaches cmake through the environment.
PREFIX ?= /usr/local
install: build
	cmake --install $(RELEASE_DIR) --prefix $(PREFIX)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build
