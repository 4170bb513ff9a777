# wagate: `make run` starts the dev stack, `make test` runs every test.
# Only Go is needed; redis-server is installed from Debian's packages when missing.

export GOTOOLCHAIN := local
GO ?= go

# The e2e package links the embedded Temporal server and runs whole stacks; it gets
# the machine to itself after the unit packages.
UNIT_PKGS = $$($(GO) list ./... | grep -v '/e2e$$')

.PHONY: help run test test-unit test-e2e redis chromium postgresql build prod-check-tools prod-check bench bench-quick fuzz vet fmt-check deps-check clean clean-data

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: redis ## start the dev stack: API :5000, Temporal :7233, Web UI :8233, sandbox :8081
	GOTOOLCHAIN=local $(GO) run ./cmd/wagate

test: redis chromium ## run every test (unit packages, then e2e on its own)
	GOTOOLCHAIN=local $(GO) test -count=1 -timeout 60m $(UNIT_PKGS)
	GOTOOLCHAIN=local $(GO) test -count=1 -timeout 60m -p 1 ./e2e

test-unit: redis ## run the unit and Redis tests only
	GOTOOLCHAIN=local $(GO) test -count=1 -timeout 30m $(UNIT_PKGS)

test-e2e: redis chromium ## run the end-to-end tests only
	GOTOOLCHAIN=local $(GO) test -count=1 -timeout 60m -p 1 ./e2e

redis: ## install redis-server from Debian's packages unless it is there
	@export GOTOOLCHAIN=local; \
	if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || [ -x /usr/sbin/redis-server ]; then \
		exit 0; \
	fi; \
	echo "redis-server not found: installing it with apt-get"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
	$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server

chromium: ## install Debian's headless Chromium unless it is there (the e2e browser tests)
	@if [ -n "$$WAGATE_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		exit 0; \
	fi; \
	echo "chromium not found: installing it with apt-get"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
	$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

postgresql: ## install PostgreSQL from Debian's packages unless it is there (for make prod-check)
	@if [ -n "$$PG_BIN" ] || command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
		exit 0; \
	fi; \
	echo "PostgreSQL not found: installing it with apt-get"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
	$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql

build: ## build bin/apiserver, bin/worker, bin/wagate and bin/sandbox
	GOTOOLCHAIN=local $(GO) build -o bin/ ./cmd/apiserver ./cmd/worker ./cmd/wagate ./cmd/sandbox

prod-check-tools: ## build bin/temporal-server and bin/temporal-sql-tool from go.temporal.io/server (make prod-check only)
	GOTOOLCHAIN=local $(GO) build -o bin/ ./tools/temporal-server ./tools/temporal-sql-tool

prod-check: redis postgresql build prod-check-tools ## the compose topology without Docker: PostgreSQL, Temporal, Redis, 2 apiservers, 2 workers; a 5k task through a worker kill and a PostgreSQL restart
	GOTOOLCHAIN=local $(GO) run ./internal/prodcheck -bin bin -repo . \
		-schema-dir "$$(GOTOOLCHAIN=local $(GO) list -m -f '{{.Dir}}' go.temporal.io/server)/schema"

bench: redis build ## bulk throughput vs a plain goroutine pool (W=10, W=100; N=10k and a 100k scale run); writes docs/BENCHMARKS.md
	GOTOOLCHAIN=local $(GO) run ./cmd/bench -n 10000 -workers 10,100 -latency 50ms -scale 100000 -bin bin -out docs/BENCHMARKS.md -command "make bench"

bench-quick: redis build ## the same comparison at N=2000 without the scale run; prints only
	GOTOOLCHAIN=local $(GO) run ./cmd/bench -n 2000 -workers 10,100 -latency 50ms -bin bin -faults=false -template=false -out "" -command "make bench-quick"

FUZZTIME ?= 30s

fuzz: redis ## run every fuzz target for FUZZTIME each (30s); make test runs their seed corpora
	@export GOTOOLCHAIN=local; set -e; \
	for pkg in $$($(GO) list ./... | grep -v '/e2e$$'); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

vet: ## go vet every package
	GOTOOLCHAIN=local $(GO) vet ./...

fmt-check: ## fail when a Go file is not gofmt-formatted
	@export GOTOOLCHAIN=local; \
	out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.wagate/*'))"; \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

deps-check: ## fail when a production binary links the embedded Temporal server or a test-only library (OpenAPI validator, browser driver)
	@export GOTOOLCHAIN=local; \
	bad="$$($(GO) list -deps ./cmd/apiserver ./cmd/worker | grep -E '^(github.com/wagate/wagate/devserver|go.temporal.io/server|github.com/temporalio/ui-server|github.com/pb33f/|github.com/chromedp/|github.com/wagate/wagate/internal/(openapicheck|contract))' | sort -u)"; \
	if [ -n "$$bad" ]; then echo "production binaries link:"; echo "$$bad"; exit 1; fi; \
	echo "cmd/apiserver and cmd/worker link neither the embedded server nor the test-only libraries"

clean: ## remove built binaries
	rm -rf bin

clean-data: ## forget the dev stack's tasks (removes .wagate)
	rm -rf .wagate
