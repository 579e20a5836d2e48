# berth: build, install, test, lint, and run the example container.
PREFIX ?= /usr/local
CARGO ?= cargo
EXAMPLE_BUNDLE ?= target/example-bundle
BERTH_RELEASE := target/release/berth

.PHONY: all build install test unit-test integration-test v2-test lint example clean

all: build

build:
	$(CARGO) build --release

install: build
	install -D -m 0755 $(BERTH_RELEASE) $(DESTDIR)$(PREFIX)/bin/berth

# Everything: unit tests (any user) and integration tests (root: namespaces, mounts, cgroups),
# then the cgroup tests again on a pure cgroup v2 host (a VM) when KVM is usable here.
test: lint
	$(CARGO) test --all-targets
	@if why=$$(hack/v2-vm.sh --probe-kvm); then \
		$(MAKE) --no-print-directory v2-test; \
	else \
		echo "make test: skipped the cgroup v2 VM tests: $$why"; \
	fi

unit-test:
	$(CARGO) test --bins

integration-test:
	$(CARGO) test --test integration

# The cgroup integration tests in a VM whose only cgroup hierarchy is cgroup2 (hack/v2-vm.sh:
# Debian's kernel under qemu with KVM). V2VM_ARGS=--tcg runs it without KVM, slowly.
v2-test:
	$(CARGO) test --test integration --no-run
	CARGO="$(CARGO)" hack/v2-vm.sh $(V2VM_ARGS)

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

# Side-by-side benchmark with crun and runc (root; not part of `make test`).
.PHONY: bench
bench: build
	hack/bench.sh $(BERTH_RELEASE)
