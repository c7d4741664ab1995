# The commands here are the ones .ci/run and the Dockerfile run, so that what ships is what is tested.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/swarmgate/swarmgate/cli.Version=$(VERSION)

.PHONY: web build run test fuzz bench bench-tracker bench-cluster demo-media clean

# The browser pages' dependencies, at the versions package-lock.json pins: webtorrent's prebuilt
# browser files are copied into web/static/vendor, and the live page's bundle of hls.js and
# p2p-media-loader is built there with esbuild (committed, so that a plain `go build` works without
# npm; CI checks the files match what the packages make).
web:
	cd web && npm ci --ignore-scripts --no-audit --no-fund && node copy-vendor.mjs

build: web
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/swarmgate .

run: web
	$(GO) run . serve --demo

# The test command: vet, the pages' pure functions with node's test runner (web/test, outside the
# embedded web/static), then every package's tests with the race detector.
test:
	$(GO) vet ./...
	node --test web/test/
	$(GO) test -race -count=1 -timeout 20m ./...

# Every fuzz target for FUZZTIME, one after another: go test -fuzz takes one target of one package
# per run. Their seed corpora (f.Add and testdata/fuzz) already run as tests in `make test`.
# A count of inputs, not a duration: with a duration, go test reports "context deadline exceeded"
# as a failure when the time runs out while it minimises a new input.
FUZZTIME ?= 20000x
FUZZ_TARGETS := signaling:FuzzHandle signaling:FuzzBinaryID internal/trackerclient:FuzzClientDispatch \
	signaling:FuzzMessageDecode gateway:FuzzMagnetSpec gateway:FuzzParseInfoHash gateway:FuzzMetainfoSpec gateway:FuzzStreamRange \
	live:FuzzSignedEntryJSON live:FuzzSignEntry live:FuzzManifest live:FuzzParseCutPlaylist \
	media:FuzzKeyframes

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz ./$$pkg $$name"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s -parallel 1 ./$$pkg/; \
	done

bench:
	$(GO) run ./bench

# The websocket tracker next to bittorrent-tracker (node), which webtorrent brings into
# web/node_modules: run `make web` once first.
bench-tracker:
	$(GO) run ./bench/tracker

# What the cluster costs the tracker: alone, three nodes with the sockets on their swarms' home,
# and across nodes (each node a child process with its embedded NATS), side by side.
bench-cluster:
	$(GO) run ./bench/tracker -cluster -rounds 3

demo-media:
	scripts/make-demo-media.sh

clean:
	rm -rf bin
