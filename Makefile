# wisp - one Makefile for the engine, its tests, fuzzers and benchmarks.
#
#   make                 build/wisp (CPU engine)
#   make                 portable: the baseline ISA is ARCH (x86-64-v2), and
#                        the AVX2 / AVX-512 / AMX kernels are chosen at run
#                        time; make ARCH=x86-64-v3 raises the baseline
#   make NATIVE=1        a build tuned for this machine only (-march=native)
#   make CUDA=1          also compile kernels/*.cu with nvcc and link cudart +
#                        cuBLAS. CUDA is built only when asked (CUDA=1): nvcc
#                        being installed is not enough, because a CUDA build
#                        needs the CUDA runtime at run time too.
#   make SANITIZE=1      ASan + UBSan build under build/san/, with fault injection
#   make FAULT=1         fault injection (common/alloc.h) in build/fault/
#   make test            unit tests + end-to-end tests (add SANITIZE=1 to repeat
#                        them under the sanitizers)
#   make fuzz            libFuzzer targets, each run FUZZ_SECONDS
#   make lint            lint-format (clang-format check) + lint-tidy (cppcheck)
#   make format          applies .clang-format to src/ tools/ tests/
#   make bench           benchmarks (see README)
#   make deps            install the Debian packages the build and tests need

CC       ?= gcc
CLANG    ?= clang
PYTHON   ?= /usr/bin/python3
CUDA     ?= 0
SANITIZE ?= 0
CUDA_HOME ?= /usr/local/cuda
NVCC     ?= $(CUDA_HOME)/bin/nvcc
SHARED   ?= $(abspath ../shared)
FUZZ_SECONDS ?= 40
ARCH     ?= x86-64-v2
NATIVE   ?= 0

# The instructions every file may use. Vector code beyond them lives only in
# the _avx2 / _avx512 / _avx512bf16 / _amx files below, which the CPU engine calls after
# checking the CPU has what their flags allow, so the binary runs on any
# CPU of the baseline (WISP_SIMD=scalar is then the baseline's own code).
# Contraction stays off everywhere: the scalar and lane-wise code is written
# for two roundings in a * b + c, and the FMA paths ask for theirs by name.
ifeq ($(NATIVE),1)
ARCH_NAME  := native
else
ARCH_NAME  := $(ARCH)
endif
ARCH_FLAGS := -march=$(ARCH_NAME) -ffp-contract=off

ifeq ($(SANITIZE),1)
OUT := build/san
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
FAULT ?= 1
else
OUT := build
OPT := -O2 -g
LDSAN :=
endif

# Fault injection (common/alloc.h): every allocation can be made to fail.
# On in sanitizer builds, where test_fault walks the failures; FAULT=1
# turns it on elsewhere (its objects then go to their own folder).
FAULT ?= 0
ifeq ($(FAULT),1)
FAULT_FLAGS := -DWISP_FAULT_INJECTION -include src/common/alloc.h
ifneq ($(SANITIZE),1)
OUT := build/fault
endif
endif

ifeq ($(CUDA),1)
VARIANT := cuda
else
VARIANT := cpu
endif
VARIANT := $(VARIANT)-$(ARCH_NAME)
OBJ := $(OUT)/obj-$(VARIANT)

WARN    := -Wall -Wextra -Werror -Wformat=2 -Wno-unused-parameter
CFLAGS  ?=
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(ARCH_FLAGS) -pthread $(WARN) -Isrc -MMD -MP $(FAULT_FLAGS)
LDLIBS  := -ljansson -lev -lcurl -lpcre2-8 -lutf8proc -ledit -lxxhash -lpthread -lm

# Instruction-set specific files choose their ISA by name; the dispatcher
# (src/engine/cpu/cpu_types.c, amx.c) picks among them at run time and
# checks exactly these features (and the OS's register state) first. The
# flags name each extension: nothing beyond them (AVX512-FP16, BF16, VBMI,
# BMI2, ...) may reach those files, whatever the baseline.
ISA_AVX2   := -mavx2 -mfma -mf16c
ISA_AVX512 := $(ISA_AVX2) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
ISA_AMX    := $(ISA_AVX512) -mamx-tile -mamx-int8
ISA_AVX512BF16 := $(ISA_AVX512) -mavx512bf16

SRC_ALL  := $(shell find src -name '*.c' | sort)
# rope_table.c, range.c and layer_image.c are host arithmetic with no CUDA
# header: every build compiles them, so the CPU tests check what the CUDA
# engine acts on.
CUDA_HOST_C := src/engine/cuda/rope_table.c src/engine/cuda/range.c src/engine/cuda/layer_image.c
SRC_CUDA := $(filter-out $(CUDA_HOST_C),$(filter src/engine/cuda/%,$(SRC_ALL)))
SRC_LIB  := $(filter-out src/main.c $(SRC_CUDA),$(SRC_ALL))
CU_SRC   :=
ifeq ($(CUDA),1)
SRC_LIB  += $(SRC_CUDA)
CU_SRC   := $(sort $(wildcard kernels/*.cu))
CFLAGS   += -DWISP_CUDA=1 -I$(CUDA_HOME)/include
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
NVFLAGS  := -O2 -std=c++17 -Isrc -Ikernels -Xcompiler -fPIC,-Wall \
            -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 \
            -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 \
            -gencode arch=compute_90,code=compute_90
endif

LIB_OBJ  := $(SRC_LIB:%.c=$(OBJ)/%.o) $(CU_SRC:%.cu=$(OBJ)/%.cu.o)
MAIN_OBJ := $(OBJ)/src/main.o
LIB      := $(OBJ)/libwisp.a
BIN      := $(OUT)/wisp

TEST_SRC  := $(sort $(wildcard tests/unit/test_*.c))
TEST_BIN  := $(TEST_SRC:tests/unit/%.c=$(OUT)/tests/unit/%)
TOOL_SRC  := $(sort $(wildcard tools/*.c))
TOOL_BIN  := $(TOOL_SRC:tools/%.c=$(OUT)/tools/%)
FUZZ_SRC  := $(sort $(wildcard tests/fuzz/fuzz_*.c))
GPU_TEST_SRC := $(sort $(wildcard tests/gpu/test_*.c))
GPU_TEST_BIN := $(GPU_TEST_SRC:tests/gpu/%.c=$(OUT)/tests/gpu/%)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)

.PHONY: all test unit e2e fuzz bench deps clean tools test-gpu build-tests lint lint-format \
    lint-tidy format
all: $(BIN) $(TOOL_BIN)

# A stamp per variant forces a relink when CUDA=0/1 or the ISA baseline
# alternate in one folder.
$(OUT)/.variant-$(VARIANT):
	@mkdir -p $(OUT)
	@rm -f $(OUT)/.variant-*
	@touch $@

$(BIN): $(MAIN_OBJ) $(LIB) $(OUT)/.variant-$(VARIANT)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $(MAIN_OBJ) $(LIB) $(LDLIBS)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(OBJ)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_AVX2) -c -o $@ $<

$(OBJ)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_AVX512) -c -o $@ $<

$(OBJ)/%_amx.o: %_amx.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_AMX) -c -o $@ $<

$(OBJ)/%_avx512bf16.o: %_avx512bf16.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_AVX512BF16) -c -o $@ $<

$(OBJ)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c -o $@ $<

$(OUT)/tests/unit/%: tests/unit/%.c $(LIB) tests/unit/harness.h $(OUT)/.variant-$(VARIANT)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDSAN) -o $@ $< $(LIB) $(LDLIBS)

$(OUT)/tools/%: tools/%.c $(LIB) $(OUT)/.variant-$(VARIANT)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $< $(LIB) $(LDLIBS)

tools: $(TOOL_BIN)

# GPU kernel tests: built with CUDA=1 (so CI compiles and links them), run by
# make test-gpu on a machine with a GPU; without one each reports skipped.
ifeq ($(CUDA),1)
all: $(GPU_TEST_BIN)
endif
$(OUT)/tests/gpu/%: tests/gpu/%.c $(LIB) tests/unit/harness.h tests/gpu/gpu_test.h $(OUT)/.variant-$(VARIANT)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -Itests/gpu $(LDSAN) -o $@ $< $(LIB) $(LDLIBS)

# ---------------------------------------------------------------- tests
# Sanitizer runs: leaks are errors; abort on the first report.
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

test: unit e2e

# Everything the tests run, so a parallel build can come first and the test
# runs themselves stay sequential (readable output, no two suites fighting
# for the same cores).
build-tests: $(BIN) $(TOOL_BIN) $(TEST_BIN)

unit: $(TEST_BIN) $(BIN) $(TOOL_BIN)
	WISP_SHARED=$(SHARED) WISP_BIN=$(abspath $(BIN)) WISP_TOOLS=$(abspath $(OUT)/tools) \
	    tests/unit/run.sh $(OUT)/tests/unit

e2e: $(BIN) $(TOOL_BIN)
	WISP_SHARED=$(SHARED) WISP_BIN=$(abspath $(BIN)) WISP_TOOLS=$(abspath $(OUT)/tools) \
	    $(PYTHON) -m pytest -q -rs tests/e2e

test-gpu:
	$(MAKE) CUDA=1 all
	WISP_SHARED=$(SHARED) tests/unit/run.sh $(OUT)/tests/gpu
	WISP_SHARED=$(SHARED) WISP_BIN=$(abspath $(BIN)) WISP_DEVICE=cuda \
	    $(PYTHON) -m pytest -q -rs tests/e2e

# ---------------------------------------------------------------- fuzz
# libFuzzer needs clang; the library is rebuilt with clang and coverage.
FUZZ_OBJ := build/fuzz/obj
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g $(ARCH_FLAGS) -pthread -Isrc -Wall -Wextra -Werror \
    -Wno-unused-parameter -fsanitize=fuzzer-no-link,address,undefined -MMD -MP
FUZZ_LIB_OBJ := $(filter-out $(SRC_CUDA:%.c=$(FUZZ_OBJ)/%.o),$(SRC_ALL:%.c=$(FUZZ_OBJ)/%.o))
FUZZ_LIB_OBJ := $(filter-out $(FUZZ_OBJ)/src/main.o,$(FUZZ_LIB_OBJ))

$(FUZZ_OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -c -o $@ $<
# The per-ISA compute kernels are built without coverage or sanitizers
# here: no fuzz target reaches them (their inputs are files, JSON,
# templates and text), clang's ASan+UBSan instrumentation of their
# unrolled intrinsics takes minutes per file, and the SANITIZE=1 suite
# runs them under ASan/UBSan at every SIMD level.
FUZZ_KERNEL_CFLAGS := $(filter-out -fsanitize=%,$(FUZZ_CFLAGS))
$(FUZZ_OBJ)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_KERNEL_CFLAGS) $(ISA_AVX2) -c -o $@ $<
$(FUZZ_OBJ)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_KERNEL_CFLAGS) $(ISA_AVX512) -c -o $@ $<
$(FUZZ_OBJ)/%_amx.o: %_amx.c
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_KERNEL_CFLAGS) $(ISA_AMX) -c -o $@ $<
$(FUZZ_OBJ)/%_avx512bf16.o: %_avx512bf16.c
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_KERNEL_CFLAGS) $(ISA_AVX512BF16) -c -o $@ $<

# Kept between runs: make would otherwise delete them as intermediates.
.SECONDARY: $(FUZZ_LIB_OBJ)

build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(LDLIBS)

fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	    name=$$(basename $$f); corpus=build/fuzz/corpus-$$name; mkdir -p $$corpus; \
	    seeds=tests/fuzz/seeds/$$name; [ -d $$seeds ] || seeds=; \
	    echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 \
	        -print_final_stats=1 $$corpus $$seeds 2>build/fuzz/$$name.log \
	      || { tail -n 60 build/fuzz/$$name.log; echo "fuzz: $$name FAILED"; exit 1; }; \
	    grep -E 'stat::number_of_executed_units' build/fuzz/$$name.log || true; \
	done

# ---------------------------------------------------------------- lint
# The C sources the style covers (kernels/*.cu follow nvcc's conventions).
LINT_SRC := $(shell find src tools tests -name '*.[ch]' | sort)
CLANG_FORMAT ?= clang-format
CPPCHECK ?= cppcheck

lint: lint-format lint-tidy

lint-format:
	$(CLANG_FORMAT) --dry-run --Werror $(LINT_SRC)

format:
	$(CLANG_FORMAT) -i $(LINT_SRC)

# cppcheck's warning and portability checks, less those that only misfire
# here: invalidPointerCast (the SIMD and AMX code reads quant blocks through
# typed pointers on purpose), and the uninitialized-variable family, whose
# path analysis assumes loops that run zero times where they cannot (the
# compiler's -Wmaybe-uninitialized and the sanitizer runs cover them), and
# log() of a sum the sampler only forms over a vocabulary it checked to be
# non-empty. jansson.h is read for its iteration macros.
CPPCHECK_FLAGS := -q -j2 --std=c11 --enable=warning,portability --inline-suppr \
    --error-exitcode=1 -D_GNU_SOURCE -D__GNUC__ -Isrc -Itests/unit \
    --include=/usr/include/jansson.h --suppress=missingIncludeSystem \
    --suppress=invalidPointerCast --suppress=uninitvar --suppress=uninitStructMember \
    --suppress=legacyUninitvar --suppress=uninitdata \
    --suppress=invalidFunctionArg:src/gen/sampler.c
lint-tidy:
	$(CPPCHECK) $(CPPCHECK_FLAGS) --template='{file}:{line}: {severity} {id}: {message}' \
	    src tools tests/unit tests/fuzz tests/gpu

# ---------------------------------------------------------------- bench
bench: $(BIN) $(TOOL_BIN)
	WISP_BIN=$(abspath $(BIN)) WISP_TOOLS=$(abspath $(OUT)/tools) tests/bench/run.sh

# ---------------------------------------------------------------- deps
DEB_PKGS := gcc make clang libclang-rt-14-dev libjansson-dev libev-dev libpcre2-dev \
    libutf8proc-dev libedit-dev libxxhash-dev libcurl4-openssl-dev libgomp1 libssl3 \
    python3 python3-pytest python3-jsonschema python3-jinja2 \
    neovim tmux nodejs qemu-user clang-format cppcheck
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	    | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "deps: all installed"; fi

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
