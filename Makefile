GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/crid
PREFIX  ?= /usr/local
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin

.PHONY: build test test-unit test-e2e bench lint run install clean

# crid-shim (the per-container shim without the daemon's packages) goes
# next to crid, where crid looks for it.
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/crid
	$(GO) build -trimpath -o $(BIN)-shim ./cmd/crid-shim

# The one command CI and the README run: lint, unit and end-to-end tests.
test: lint test-unit test-e2e

test-unit:
	$(GO) test -count=1 ./pkg/... ./cmd/... ./hack/...

# End-to-end tests start the real daemon as root with real runc, CNI and a
# local registry; they need hack/install-deps.sh to have run.
test-e2e: build
	CRID_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -p 1 -timeout 30m ./test/...

bench: build
	CRID_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 1x -count=1 ./test/bench/...

lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './vendor/*')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

run: build
	hack/install-deps.sh
	$(BIN)

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/crid
	install -D -m 0755 $(BIN)-shim $(DESTDIR)$(PREFIX)/bin/crid-shim
	install -D -m 0644 contrib/crid.service $(DESTDIR)/etc/systemd/system/crid.service

clean:
	rm -rf bin
