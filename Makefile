# Front door. `make run` and `make test` do all the set-up on a fresh Debian 12 machine.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
PYTHON_REF ?= /usr/bin/python3
FUZZ_SECONDS ?= 60

.PHONY: all deps build run test bench check-all asan tsan fuzz fixtures chat-fixtures format clean

all: build

deps:
	@bash scripts/install-deps.sh
	@bash scripts/install-llamacpp.sh
	@# the openai client test_serve drives moe serve with (the test skips itself when it is missing)
	@cd tests/reference/serve && { [ -d node_modules/openai ] || npm install --no-audit --no-fund || echo "[deps] npm install of the openai client failed: Serve.NpmOpenAIClient will skip"; }

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# The main job on the embedded default.
run: build
	@bash scripts/main-job.sh $(BUILD)/bin/moe

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 600

bench: build
	@bash scripts/bench.sh $(BUILD)

# Sanitizer builds (ASan+UBSan, then TSan) and the test suite under each; the ASan suite includes the
# fault injection (reliability_kill9: kill -9 during every command that writes files).
check-all: asan tsan

asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOE_SANITIZE=address -DMOE_BUILD_BENCH=OFF
	cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 MOE_SANITIZER_BUILD=1 \
	  ctest --test-dir build-asan --output-on-failure -j $(JOBS) --timeout 1200

tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOE_SANITIZE=thread -DMOE_BUILD_BENCH=OFF
	cmake --build build-tsan -j $(JOBS)
	# The threaded layers (pool, kernels, MoE layer, in-process EP ranks). Not the mpirun tests (label
	# mpi): TSan stops in Open MPI's own MPI_Init (a lock-order inversion inside mca_btl_tcp).
	TSAN_OPTIONS=halt_on_error=1 MOE_SANITIZER_BUILD=1 \
	  ctest --test-dir build-tsan --output-on-failure -j $(JOBS) --timeout 1200 -L "runtime|kernels|moe|parallel|serve" -LE mpi

# libFuzzer targets (fuzz/, clang, ASan+UBSan), each run FUZZ_SECONDS from its committed seed corpus
# (FUZZ_RUNS=N: or until N executions, whichever comes first); fails on any finding (crash, sanitizer
# report, hang, huge allocation, non-moe exception).
fuzz:
	@bash scripts/install-deps.sh --fuzz
	cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DMOE_FUZZ=ON \
	  -DMOE_BUILD_TESTS=OFF -DMOE_BUILD_BENCH=OFF -DMOE_WITH_MPI=OFF
	cmake --build build-fuzz -j $(JOBS) --target fuzz_all
	bash scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

# Regenerates the committed reference fixtures with Debian's python3-torch.
fixtures:
	@bash scripts/install-deps.sh --fixtures
	@for s in tests/reference/make_*.py; do echo "== $$s"; $(PYTHON_REF) $$s || exit 1; done

# Renders the real chat templates with @huggingface/jinja (npm) into the expected outputs the Jinja
# interpreter's tests compare against.
chat-fixtures:
	cd tests/reference/chat && npm install --no-audit --no-fund
	node tests/reference/make_chat_template_fixtures.mjs

format:
	find src tests bench -name '*.cc' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
