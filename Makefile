# berth: build, install, test, lint, and run the example container.
PREFIX ?= /usr/local
CARGO ?= cargo
EXAMPLE_BUNDLE ?= target/example-bundle
# The release binary is static (glibc and libseccomp linked in, non-PIE): no dynamic loader
# or shared-library mappings at every start, which is about 0.8 MiB less peak RSS and ~40
# fewer syscalls per container. Built for the host triple so these flags stay off the
# build scripts and proc-macros (and off `cargo test`'s dynamic build).
HOST_TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')
BERTH_RELEASE := target/$(HOST_TRIPLE)/release/berth
STATIC_ENV := LIBSECCOMP_LINK_TYPE=static \
	LIBSECCOMP_LIB_PATH=$(shell pkg-config --variable=libdir libseccomp) \
	RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static"

.PHONY: all build install test unit-test integration-test v2-test systemd-test systemd-v1-test soak lint example clean fuzz fuzz-smoke fuzz-build

all: build

build:
	$(STATIC_ENV) $(CARGO) build --release --target $(HOST_TRIPLE)

install: build
	install -D -m 0755 $(BERTH_RELEASE) $(DESTDIR)$(PREFIX)/bin/berth

# Everything: unit tests (any user), integration tests (root: namespaces, mounts, cgroups),
# the example container with the static release binary, then the tests again on hosts of
# another shape, in VMs (hack/vm.sh): a pure cgroup v2 host, and Debian 12 with systemd as
# PID 1 (the systemd cgroup driver). With KVM when it is usable, else with qemu's software
# emulation (slower); when neither can run, `make test` fails rather than skip them.
test: lint
	$(CARGO) test --all-targets
	$(MAKE) --no-print-directory fuzz-smoke
	@# The shipped binary is the static release build: it must run a container too.
	$(MAKE) --no-print-directory example
	@accel=$$(hack/vm.sh --probe-accel) || { echo "make test: $$accel" >&2; exit 1; }; \
		VM_ACCEL=$$accel $(MAKE) --no-print-directory v2-test && \
		VM_ACCEL=$$accel $(MAKE) --no-print-directory systemd-test && \
		VM_ACCEL=$$accel $(MAKE) --no-print-directory systemd-v1-test

unit-test:
	$(CARGO) test --lib --bins

integration-test:
	$(CARGO) test --test integration

# The cgroup integration tests in a VM whose only cgroup hierarchy is cgroup2 (hack/vm.sh
# --guest v2: Debian's kernel under qemu with KVM). VM_ARGS=--tcg runs it without KVM, slowly.
v2-test:
	$(CARGO) test --test integration --no-run
	CARGO="$(CARGO)" hack/vm.sh --guest v2 $(VM_ARGS)

# The tests of hack/systemd-vm-tests.txt (the systemd cgroup driver, the engines with their
# defaults) in a Debian 12 guest with systemd as PID 1 and cgroup2 alone (hack/vm.sh --guest
# systemd; its image is built once with mmdebstrap and cached under target/vm/).
systemd-test:
	$(CARGO) test --test integration --no-run
	CARGO="$(CARGO)" hack/vm.sh --guest systemd $(VM_ARGS)

# hack/systemd-v1-vm-tests.txt in the same guest booted in systemd's cgroup v1 (hybrid) mode.
systemd-v1-test:
	$(CARGO) test --test integration --no-run
	CARGO="$(CARGO)" hack/vm.sh --guest systemd-v1 $(VM_ARGS)

# Soak (root; not part of `make test`): SOAK_N container lifecycles (default 10000), SOAK_PARALLEL
# (8) at a time, with exec, pause/resume, update and kill, on the static release binary; fails on
# any failure, leak, or growth of berth's RSS, fds or run time from the first thousand to the last.
soak: build
	SOAK_BERTH=$(abspath $(BERTH_RELEASE)) $(CARGO) test --test integration robustness::soak -- --ignored --exact --nocapture

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# Builds berth and a local busybox bundle from config.json.example, runs it, deletes it.
example: build
	rm -rf $(EXAMPLE_BUNDLE)
	mkdir -p $(EXAMPLE_BUNDLE)
	hack/make-rootfs.sh $(EXAMPLE_BUNDLE)/rootfs
	cp config.json.example $(EXAMPLE_BUNDLE)/config.json
	$(BERTH_RELEASE) run --bundle $(EXAMPLE_BUNDLE) berth-example-$$$$

clean:
	$(CARGO) clean

# Side-by-side benchmark with crun and runc (root; not part of `make test`); systemd-bench:
# the same with --systemd-cgroup for each, in the systemd guest (VM_ARGS=--tcg without KVM).
.PHONY: bench systemd-bench
bench: build
	hack/bench.sh $(BERTH_RELEASE)

systemd-bench: build
	$(CARGO) test --test integration --no-run
	CARGO="$(CARGO)" hack/vm.sh --guest systemd --bench $(BERTH_RELEASE) $(VM_ARGS)

# Fuzzing (fuzz/, a crate of its own): every parser of outside input, each target for
# FUZZ_SECONDS (`fuzz`) or FUZZ_SMOKE_SECONDS (`fuzz-smoke`, part of `make test`). A panic,
# a hang (an input running longer than FUZZ_TIMEOUT) or a leak fails make, leaving the input
# in fuzz/artifacts/TARGET/. cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP lets the
# stable toolchain provide them. New interesting inputs go to fuzz/corpus/TARGET (not
# committed); the seeds in fuzz/seeds/TARGET are read-only.
FUZZ_TARGETS ?= config_json mount_options signal cgroups_path exec_cgroup exec_process \
	update_resources sync_channel
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_TIMEOUT ?= 10
FUZZ_SCRATCH := $(CURDIR)/fuzz/target/scratch
FUZZ_ENV := RUSTC_BOOTSTRAP=1 BERTH_FUZZ_SCRATCH=$(FUZZ_SCRATCH)

fuzz-build:
	$(FUZZ_ENV) $(CARGO) fuzz build

fuzz: fuzz-build
	@$(MAKE) --no-print-directory fuzz-run FUZZ_RUN_SECONDS=$(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	@$(MAKE) --no-print-directory fuzz-run FUZZ_RUN_SECONDS=$(FUZZ_SMOKE_SECONDS)

.PHONY: fuzz-run
fuzz-run:
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		echo "fuzz: $$t for $(FUZZ_RUN_SECONDS)s"; \
		status=0; \
		$(FUZZ_ENV) $(CARGO) fuzz run $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
			-max_total_time=$(FUZZ_RUN_SECONDS) -timeout=$(FUZZ_TIMEOUT) \
			-dict=fuzz/numbers.dict -print_final_stats=1 2>fuzz/target/$$t.log || status=$$?; \
		rm -rf $(FUZZ_SCRATCH); \
		grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done)' fuzz/target/$$t.log || true; \
		if [ $$status -ne 0 ]; then tail -n 40 fuzz/target/$$t.log; echo "fuzz: $$t failed (log: fuzz/target/$$t.log)"; exit 1; fi; \
	done
