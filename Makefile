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
# The functions the everyday commands run are placed together (hack/berth.order, made by
# `sudo make order`; LLD skips names a newer build lacks): a command maps a few hundred KiB
# of the binary instead of most of it. Only with LLD, the linker rustc uses on this target
# from Rust 1.90 (GNU ld has no such option).
RUSTC_MINOR := $(shell rustc -V | sed -n 's/^rustc 1\.\([0-9]*\)\..*/\1/p')
ORDER_FLAGS := -C link-arg=-Wl,--symbol-ordering-file=$(CURDIR)/hack/berth.order \
	-C link-arg=-Wl,--no-warn-symbol-ordering
SYMBOL_ORDER := $(if $(shell [ "$(RUSTC_MINOR)" -ge 90 ] 2>/dev/null && echo lld),$(ORDER_FLAGS))
STATIC_ENV := LIBSECCOMP_LINK_TYPE=static \
	LIBSECCOMP_LIB_PATH=$(shell pkg-config --variable=libdir libseccomp) \
	RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static $(SYMBOL_ORDER)"

.PHONY: all build docs install deb test unit-test integration-test v2-test systemd-test systemd-v1-test soak lint example clean fuzz fuzz-smoke fuzz-build

DOCS_DIR := target/docs
DEB_DIR := target/deb
DEB_ROOT := $(DEB_DIR)/root
# Debian's version syntax sorts a pre-release below its release only when written with "~".
DEB_VERSION = $(shell sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | tr - '~')
DEB_ARCH = $(shell dpkg --print-architecture 2>/dev/null)
# As Debian's tools (dch) take it: DEBFULLNAME and DEBEMAIL, when set.
DEB_MAINTAINER ?= $(or $(DEBFULLNAME),berth maintainers) <$(or $(DEBEMAIL),berth@localhost)>
# The package's date (its changelog's) and its copyright years: from the git history, for a
# package made again from the same commit to be the same, or SOURCE_DATE_EPOCH.
DEB_EPOCH = $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%ct 2>/dev/null),$(shell date +%s))
DEB_YEARS = $(shell y0=$$(git log --reverse --format=%cd --date=format:%Y 2>/dev/null | head -n1); \
	y1=$$(date -u -d @$(DEB_EPOCH) +%Y); [ -z "$$y0" ] || [ "$$y0" = "$$y1" ] || printf "%s-" "$$y0"; echo "$$y1")

all: build docs

build:
	$(STATIC_ENV) $(CARGO) build --release --target $(HOST_TRIPLE)

# Man pages (berth(8), berth-SUBCOMMAND(8)) and bash, zsh and fish completions, generated from
# the clap definitions by a cargo example (examples/gen-docs.rs): the shipped binary carries
# no generator. Made afresh each time, so a removed subcommand leaves no page behind.
docs:
	rm -rf $(DOCS_DIR)
	$(CARGO) run --quiet --example gen-docs -- $(DOCS_DIR)

# $(call install-files,DIR): the binary, man pages and completions under DIR (a prefix).
define install-files
	install -D -m 0755 $(BERTH_RELEASE) $(1)/bin/berth
	install -d $(1)/share/man/man8
	install -m 0644 $(DOCS_DIR)/man/*.8 $(1)/share/man/man8/
	install -D -m 0644 $(DOCS_DIR)/completions/berth.bash $(1)/share/bash-completion/completions/berth
	install -D -m 0644 $(DOCS_DIR)/completions/_berth $(1)/share/zsh/vendor-completions/_berth
	install -D -m 0644 $(DOCS_DIR)/completions/berth.fish $(1)/share/fish/vendor_completions.d/berth.fish
endef

install: build docs
	$(call install-files,$(DESTDIR)$(PREFIX))

# A Debian package of what `make install` puts under /usr (man pages gzipped, as Debian
# ships them): target/deb/berth_VERSION_ARCH.deb, made with dpkg-deb alone (owner root
# without fakeroot). No Depends: the binary is static, which this checks; Built-Using names
# the source packages of the glibc and libseccomp linked into it, as Debian policy asks of
# static linking.
deb: build docs
	@if ldd $(BERTH_RELEASE) >/dev/null 2>&1; then \
		echo "make deb: $(BERTH_RELEASE) is dynamically linked; the package declares no Depends" >&2; \
		exit 1; fi
	rm -rf $(DEB_DIR)
	$(call install-files,$(DEB_ROOT)/usr)
	@# Stripped as Debian policy asks (about a sixth smaller) unless DEB_BUILD_OPTIONS has nostrip.
	case "$$DEB_BUILD_OPTIONS" in *nostrip*) ;; \
		*) strip --remove-section=.comment --remove-section=.note $(DEB_ROOT)/usr/bin/berth ;; esac
	gzip -9n $(DEB_ROOT)/usr/share/man/man8/*.8
	install -d $(DEB_ROOT)/usr/share/doc/berth $(DEB_ROOT)/DEBIAN
	printf '%s\n' \
		'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' \
		'Upstream-Name: berth' '' 'Files: *' 'Copyright: $(DEB_YEARS) the berth authors' \
		'License: Apache-2.0' \
		' On Debian systems the full text of the Apache License 2.0 is in' \
		' /usr/share/common-licenses/Apache-2.0.' >$(DEB_ROOT)/usr/share/doc/berth/copyright
	printf 'berth (%s) unstable; urgency=medium\n\n  * Built from the source tree by make deb.\n\n -- %s  %s\n' \
		'$(DEB_VERSION)' '$(DEB_MAINTAINER)' "$$(date -R -u -d @$(DEB_EPOCH))" \
		| gzip -9n >$(DEB_ROOT)/usr/share/doc/berth/changelog.gz
	@# Static on purpose (see build), which lintian flags unless told.
	install -d $(DEB_ROOT)/usr/share/lintian/overrides
	echo 'berth: statically-linked-binary [usr/bin/berth]' >$(DEB_ROOT)/usr/share/lintian/overrides/berth
	chmod -R u=rwX,go=rX $(DEB_ROOT)
	cd $(DEB_ROOT) && find usr -type f -exec md5sum {} + | sort -k2 >DEBIAN/md5sums
	printf '%s\n' 'Package: berth' 'Version: $(DEB_VERSION)' 'Architecture: $(DEB_ARCH)' \
		'Maintainer: $(DEB_MAINTAINER)' \
		"Installed-Size: $$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)" \
		"Built-Using: $$(dpkg-query -W -f='$${source:Package} (= $${source:Version})' libc6-dev), $$(dpkg-query -W -f='$${source:Package} (= $${source:Version})' libseccomp-dev)" \
		'Section: admin' 'Priority: optional' \
		'Description: runc-compatible OCI container runtime' \
		' berth creates and runs containers from OCI bundles with the command line' \
		' of runc, so that containerd, podman and docker can use it in place of runc.' \
		' .' \
		' The binary is statically linked (glibc, libseccomp and libdbus built in).' \
		>$(DEB_ROOT)/DEBIAN/control
	dpkg-deb --root-owner-group --build $(DEB_ROOT) $(DEB_DIR)/berth_$(DEB_VERSION)_$(DEB_ARCH).deb

# Everything: unit tests (any user), integration tests (root: namespaces, mounts, cgroups),
# the example container with the static release binary, then the tests again on hosts of
# another shape, in VMs (hack/vm.sh): a pure cgroup v2 host, and Debian 12 with systemd as
# PID 1 (the systemd cgroup driver). With KVM when it is usable, else with qemu's software
# emulation (slower); when neither can run, `make test` fails rather than skip them.
# build and docs first: the install tests (integration/install.rs) then find the release
# binary and the pages made, instead of building them while the other tests run.
test: lint build docs
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

# Side-by-side benchmark with crun and runc, directly and through containerd, podman and
# docker (root; not part of `make test`; RUNS, ROUNDS, SCALE and ENGINES as hack/bench.sh
# says); systemd-bench: the same with --systemd-cgroup for each (no engine rows), in the
# systemd guest (VM_ARGS=--tcg without KVM).
.PHONY: bench systemd-bench order
bench: build
	hack/bench.sh $(BERTH_RELEASE)

# Regenerates hack/berth.order from the release binary (root, valgrind), then relinks.
order: build
	hack/order-symbols.sh $(BERTH_RELEASE)
	touch src/main.rs
	$(MAKE) --no-print-directory build

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
