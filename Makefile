# imgtool — see README.md.
GO       ?= go
BIN      ?= bin/imgtool
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 20s

.PHONY: all build deps demo test fuzz bench lint cross clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/imgtool

deps:
	@scripts/deps.sh

# Builds imgtool, makes a small Pi-like sample image in a temporary folder and
# runs the main commands on it.
demo: deps build
	@scripts/demo.sh $(BIN)

# The test suite. CI sets IMGTOOL_STRICT=1 so that tests which need a tool or
# root fail instead of skipping.
test: deps
	$(GO) vet ./...
	$(GO) test -timeout 45m -count=1 ./...

fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench: deps build
	$(GO) run ./bench -imgtool $(BIN)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# The platforms imgtool ships for.
cross:
	GOOS=linux   GOARCH=arm64 CGO_ENABLED=0 $(GO) build ./...
	GOOS=darwin  GOARCH=arm64 CGO_ENABLED=0 $(GO) build ./...
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) build ./...
	GOOS=linux   GOARCH=amd64 CGO_ENABLED=0 $(GO) build ./...

clean:
	rm -rf bin
