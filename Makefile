# The commands here are the ones .ci/run and the Dockerfile run, so that what ships is what is tested.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/swarmgate/swarmgate/cli.Version=$(VERSION)

.PHONY: build run test bench demo-media clean

build:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/swarmgate .

run:
	$(GO) run . serve --demo

# The test command: vet, then every package's tests with the race detector.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

bench:
	$(GO) run ./bench

demo-media:
	scripts/make-demo-media.sh

clean:
	rm -rf bin
