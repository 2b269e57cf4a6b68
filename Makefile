# kiln — build, image and test targets. Every target installs what it needs (apt, Go tools).
SHELL := /bin/bash
GO ?= go
OUT ?= out
BIN := $(OUT)/bin
KILN := $(BIN)/kiln
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/kiln-dev/kiln/cmd/kiln/cli.Version=$(VERSION)
export SOURCE_DATE_EPOCH ?= 1700000000
MIRRORS := --mirrors recipes/mirrors.yaml

# Debian packages kiln's build and tests use.
BUILD_DEPS := mmdebstrap squashfs-tools dosfstools fdisk mtools e2fsprogs uidmap
TEST_DEPS := qemu-system-x86 qemu-utils ovmf time shellcheck systemd

.PHONY: all kiln deps test-deps supply-deps base supply image worker minimal test test-controlplane bench clean
all: kiln

kiln:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/kiln ./cmd/kiln
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/kiln-init ./initrd/cmd/init

deps:
	@bash hack/apt-install.sh $(BUILD_DEPS)

test-deps: deps
	@bash hack/apt-install.sh $(TEST_DEPS)

# The default base OS (Debian bookworm) as an OCI image in the local layout $(OUT)/oci.
base: $(OUT)/oci/.base-stamp
$(OUT)/oci/.base-stamp: images/base/mkbase.sh images/base/packages.txt | deps kiln
	bash images/base/mkbase.sh $(OUT)/base.tar
	$(KILN) images import $(OUT)/base.tar --name localhost/kiln/base:bookworm --created $(SOURCE_DATE_EPOCH) -o $(OUT)/oci
	rm -f $(OUT)/base.tar
	touch $@

supply-deps:
	@bash hack/apt-install.sh gcc libc6-dev libseccomp-dev pkg-config apt

# Kubernetes, etcd, containerd, runc, crictl, CNI plugins, flannel, CoreDNS and pause built from
# source, and their images, in the OCI layout $(OUT)/supply/oci. Incremental (stamps + Go cache).
supply: supply-deps
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/kiln-supply ./cmd/kiln-supply
	$(BIN)/kiln-supply -o $(OUT)/supply

# The default image: a Kubernetes control plane that comes up by itself at first boot.
image: base supply kiln
	$(KILN) build recipes/control-plane.yaml $(MIRRORS) -o $(OUT)/control-plane.raw

# A worker that joins the cluster its per-node config names (see recipes/cluster.yaml).
worker: base supply kiln
	$(KILN) build recipes/worker.yaml $(MIRRORS) -o $(OUT)/worker.raw

# The smallest bootable image (no supply needed).
minimal: base kiln
	$(KILN) build recipes/minimal.yaml -o $(OUT)/minimal.raw

# Unit tests and the QEMU scenarios.
test: test-deps base supply kiln
	KILN_BIN=$(abspath $(BIN)) KILN_OCI=$(abspath $(OUT)/oci) KILN_SUPPLY=$(abspath $(OUT)/supply) $(GO) test -count=1 -timeout 75m ./...

# The opt-in Kubernetes scenario: Q2 and Q4 with etcd as a host service. make test runs Q2
# and Q4 on the default image and the two-node cluster (Q5, in the ipvs variant).
test-controlplane: test-deps base supply kiln
	KILN_BIN=$(abspath $(BIN)) KILN_OCI=$(abspath $(OUT)/oci) KILN_SUPPLY=$(abspath $(OUT)/supply) $(GO) test -count=1 -timeout 90m -tags controlplane -run "TestEtcdServiceMode" -v ./qemu-tests

bench: base kiln
	@bash hack/apt-install.sh time bc
	bash hack/bench.sh

clean:
	rm -rf $(OUT)
