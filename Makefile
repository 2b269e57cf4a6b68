# kiln — build, image and test targets. Every target installs what apt can give (Debian 12,
# as root) and checks first what it cannot: Go, at least the version of go.mod's go line
# (hack/check-go.sh says how to install it).
SHELL := /bin/bash
# Go installed from go.dev/dl lives in /usr/local/go; it comes before an older Go on PATH.
ifneq ($(wildcard /usr/local/go/bin/go),)
export PATH := /usr/local/go/bin:$(PATH)
endif
GO ?= go
OUT ?= out
BIN := $(OUT)/bin
KILN := $(BIN)/kiln
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/kiln-dev/kiln/cmd/kiln/cli.Version=$(VERSION)
export SOURCE_DATE_EPOCH ?= 1700000000
MIRRORS := --mirrors recipes/mirrors.yaml
# make image DEBUG_CONSOLE=1 (also worker, minimal) adds the debug overlay: a passwordless root
# shell on the serial console, for trying an image out. Never for a real node.
DEBUG_OVERLAY := $(if $(filter 1 yes true,$(DEBUG_CONSOLE)),--overlay overlays/debug-console)

# Debian packages kiln's build and tests use: Go fetches modules over HTTPS (ca-certificates)
# and stamps builds from git; kiln build reads the base's kernel with xz (xz-utils).
PREREQ_DEPS := ca-certificates $(if $(wildcard .git),git)
BUILD_DEPS := mmdebstrap squashfs-tools dosfstools fdisk mtools e2fsprogs uidmap xz-utils qemu-utils xorriso
TEST_DEPS := qemu-system-x86 qemu-utils ovmf time shellcheck systemd openssh-client systemd-boot-efi binutils sbsigntool cryptsetup-bin socat
BENCH_DEPS := time bc python3 mount

.PHONY: all prereqs kiln deps test-deps supply-deps base supply image worker minimal unit test test-controlplane test-cluster test-ha fuzz bench clean
all: kiln

prereqs:
	@bash hack/apt-install.sh $(PREREQ_DEPS)
	@bash hack/check-go.sh $(GO)

kiln: prereqs
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/kiln ./cmd/kiln
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -buildid=' -o $(BIN)/kiln-init ./initrd/cmd/init

deps: prereqs
	@bash hack/apt-install.sh $(BUILD_DEPS)

test-deps: deps
	@bash hack/apt-install.sh $(TEST_DEPS)

# The default base OS (Debian bookworm) as an OCI image in the local layout $(OUT)/oci.
base: $(OUT)/oci/.base-stamp
$(OUT)/oci/.base-stamp: images/base/mkbase.sh images/base/packages.txt $(shell find images/base/tree) | deps kiln
	bash images/base/mkbase.sh $(OUT)/base.tar
	$(KILN) images import $(OUT)/base.tar --name localhost/kiln/base:bookworm --created $(SOURCE_DATE_EPOCH) -o $(OUT)/oci
	rm -f $(OUT)/base.tar
	touch $@

supply-deps: prereqs
	@bash hack/apt-install.sh gcc libc6-dev libseccomp-dev pkg-config apt

# Kubernetes, etcd, containerd, runc, crictl, CNI plugins, flannel, CoreDNS and pause built from
# source, and their images, in the OCI layout $(OUT)/supply/oci. Incremental (stamps + Go cache).
supply: supply-deps
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/kiln-supply ./cmd/kiln-supply
	$(BIN)/kiln-supply -o $(OUT)/supply

# The default image: a Kubernetes control plane that comes up by itself at first boot.
image: base supply kiln
	$(KILN) build recipes/control-plane.yaml $(MIRRORS) $(DEBUG_OVERLAY) -o $(OUT)/control-plane.raw

# A worker that joins the cluster its per-node config names (see recipes/cluster.yaml).
worker: base supply kiln
	$(KILN) build recipes/worker.yaml $(MIRRORS) $(DEBUG_OVERLAY) -o $(OUT)/worker.raw

# The smallest bootable image (no supply needed).
minimal: base kiln
	$(KILN) build recipes/minimal.yaml $(DEBUG_OVERLAY) -o $(OUT)/minimal.raw

# The tests but the QEMU scenarios: go vet, gofmt and every package but qemu-tests. The supply's
# tests (images/supply) run once make supply or make image has built it, and are skipped until
# then (under CI=true they fail instead); the build tests need root.
UNIT_ENV := $(if $(wildcard $(KILN)),KILN_BIN=$(abspath $(BIN))) \
	$(if $(wildcard $(OUT)/oci/.base-stamp),KILN_OCI=$(abspath $(OUT)/oci)) \
	$(if $(wildcard $(OUT)/supply/bin),KILN_SUPPLY=$(abspath $(OUT)/supply))
unit: deps
	$(GO) vet ./...
	@bad=$$(find . \( -path ./$(OUT) -o -path ./.git \) -prune -o -name '*.go' -print | xargs -r "$$($(GO) env GOROOT)/bin/gofmt" -l); \
	if [ -n "$$bad" ]; then printf 'not gofmt-formatted (gofmt -w FILE):\n%s\n' "$$bad" >&2; exit 1; fi
	$(UNIT_ENV) $(GO) test -count=1 -timeout 15m $$($(GO) list ./... | grep -v '/qemu-tests$$')

# Unit tests and the QEMU scenarios.
# The unit packages first, then the VM tests alone: a build beside a TCG boot slows the control
# plane's first boot until it does not converge (go test ./... runs packages side by side).
test: test-deps base supply kiln
	KILN_BIN=$(abspath $(BIN)) KILN_OCI=$(abspath $(OUT)/oci) KILN_SUPPLY=$(abspath $(OUT)/supply) $(GO) test -count=1 -timeout 30m $$($(GO) list ./... | grep -v '/qemu-tests$$')
	KILN_BIN=$(abspath $(BIN)) KILN_OCI=$(abspath $(OUT)/oci) KILN_SUPPLY=$(abspath $(OUT)/supply) $(GO) test -count=1 -timeout 75m ./qemu-tests

# The opt-in Kubernetes scenario: Q2 and Q4 with etcd as a host service. make test runs Q2
# and Q4 on the default image.
test-controlplane: test-deps base supply kiln
	KILN_BIN=$(abspath $(BIN)) KILN_OCI=$(abspath $(OUT)/oci) KILN_SUPPLY=$(abspath $(OUT)/supply) $(GO) test -count=1 -timeout 90m -tags controlplane -run "TestEtcdServiceMode" -v ./qemu-tests

# The opt-in two-node cluster (Q5, kube-proxy in ipvs mode): cluster init, a worker joining on a
# private segment, a NodePort workload. About 35-40 minutes under TCG on 2 cores, and it needs
# more CPU than two emulated machines get there (qemu-tests/q5_test.go says what was measured).
test-cluster: test-deps base supply kiln
	KILN_BIN=$(abspath $(BIN)) KILN_OCI=$(abspath $(OUT)/oci) KILN_SUPPLY=$(abspath $(OUT)/supply) $(GO) test -count=1 -timeout 90m -tags cluster -run "TestClusterQ5" -v ./qemu-tests

# The opt-in high-availability scenario (Q6): three control planes behind a virtual IP
# (kube-vip), stacked etcd; the VIP holder killed and rejoining, then a power cut of all three.
# Six emulated CPUs: it needs a machine with more than two cores (qemu-tests/q6_test.go).
test-ha: test-deps base supply kiln
	KILN_BIN=$(abspath $(BIN)) KILN_OCI=$(abspath $(OUT)/oci) KILN_SUPPLY=$(abspath $(OUT)/supply) $(GO) test -count=1 -timeout 180m -tags ha -run "TestHAQ6" -v ./qemu-tests

# The Go fuzz targets, PACKAGE:TARGET:EXECS, one a line. make fuzz runs each for EXECS times
# FUZZSCALE executions (about 20 s each here at FUZZSCALE=1, the CI run; the default 6 is about
# 2 min each), one after another and each in one process (-parallel 1), and fails naming those
# that failed; a failing input is written to the package's testdata/fuzz/TARGET, where go test
# then runs it. The budget is a count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can report a spurious "context deadline exceeded" as the time runs out
# (golang/go#75804, fixed in Go 1.27); a count has no deadline to race. A new interesting input
# is minimised for at most FUZZMINIMIZETIME (Go's 60 s would fill a short run).
FUZZ_TARGETS := \
	internal/recipe:FuzzRecipeLoad:10000 \
	internal/cluster:FuzzClusterLoad:10000 \
	internal/nodeconfig:FuzzNodeConfigApply:20000 \
	internal/nodeconfig/butane:FuzzButaneLoad:20000 \
	internal/inspect:FuzzInspectImage:10000 \
	internal/uki:FuzzUKIRead:20000 \
	internal/verity:FuzzReadSuperblock:20000
FUZZSCALE ?= 6
FUZZMINIMIZETIME ?= 5s
fuzz: prereqs
	@failed=; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$$(( $${rest#*:} * $(FUZZSCALE) )); \
		echo "fuzz: $$name in ./$$pkg for $$n executions"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $${n}x -fuzzminimizetime $(FUZZMINIMIZETIME) \
			-parallel 1 ./$$pkg || failed="$$failed $$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed" >&2; exit 1; fi

bench: base supply kiln
	@bash hack/apt-install.sh $(BENCH_DEPS)
	bash hack/bench.sh

clean:
	rm -rf $(OUT)
