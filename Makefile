# netdumper — build, test, lint, fuzz and benchmark.
#
#   make test    install the real nfdump/softflowd/tmux (and gcc, which -race
#                needs through cgo) when missing, then run gofmt/vet checks
#                and the whole suite with -race
#   make lint    go vet + staticcheck (pinned)
#   make fuzz    run every fuzz target for FUZZTIME (default 10s)
#   make bench   Go benchmarks plus the side-by-side scripts in bench/

GO        ?= go
FUZZTIME  ?= 10s
STATICCHECK_VERSION := v0.8.2
BIN       := bin/netdumper
# DEPS: what deps checks for, as CHECK:PACKAGE, where CHECK is a command, or
# an absolute file path that the package provides. gcc and libc6-dev are
# for go test -race, which needs cgo (libc6-dev is only recommended by gcc).
DEPS      := nfdump:nfdump nfcapd:nfdump nfreplay:nfdump softflowd:softflowd \
             tmux:tmux python3:python3 ip:iproute2 gcc:gcc /usr/include/stdlib.h:libc6-dev
TEST_FLAGS ?= -race -timeout 15m

.PHONY: all build test deps check lint fuzz bench bench-data demo clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/netdumper

# deps installs the real tools the compatibility tests run, and the C
# compiler the race detector needs. CI and the README's test command are
# root; without root, install them yourself.
deps:
	@missing=""; \
	for c in $(DEPS); do \
		chk=$${c%%:*}; pkg=$${c##*:}; \
		case $$chk in \
		/*) [ -e "$$chk" ] && continue ;; \
		*) command -v $$chk >/dev/null 2>&1 && continue ;; \
		esac; \
		case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg" ;; esac; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: deps check
	$(GO) test $(TEST_FLAGS) ./...

lint: check
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# fuzz runs each fuzz target (func Fuzz*) of every package for FUZZTIME.
# Go's fuzzer can stop with "context deadline exceeded" when the time runs
# out while a worker is still busy (seen on loaded machines); such a run,
# which wrote no failing input, is repeated once with twice the time. A real
# failure ("Failing input written to ...") fails at once.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; \
			if ! out=$$($(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1x $$pkg 2>&1); then \
				echo "$$out"; \
				if echo "$$out" | grep -q 'Failing input written' || ! echo "$$out" | grep -q 'context deadline exceeded'; then exit 1; fi; \
				echo "== $$pkg $$f: fuzzer deadline race, running again"; \
				$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $$(( 2 * $$(echo $(FUZZTIME) | tr -dc 0-9) ))s -fuzzminimizetime 1x $$pkg; \
			else echo "$$out" | tail -1; fi; \
		done; \
	done

# bench-data builds the 1M/5M-record benchmark files (git-ignored).
bench-data: deps
	@test -f bench/data/v9-bench-5000000.lz4.nf || \
		OUT_DIR=$$(mktemp -d) BENCH_DIR=$(CURDIR)/bench/data ../shared/fixtures/make-fixtures.sh --bench --no-softflowd

bench: build bench-data
	NETDUMPER_BENCH_DATA=$(CURDIR)/bench/data $(GO) test -run '^$$' -bench . -benchmem ./nfcap/ ./internal/enrich/ ./tracker/
	NETDUMPER_BENCH_DATA=$(CURDIR)/bench/data $(GO) test -run '^$$' -bench 'KeyFrame' ./tui/
	@for s in bench/*.sh; do echo "== $$s"; $$s; done

demo: build
	$(BIN) tui

clean:
	rm -rf bin

# generate rebuilds the committed eBPF objects of tracker/ebpf from their C
# sources (needs clang and llvm-strip) and records their hashes, which
# TestGeneratedCurrent (part of make test) checks.
.PHONY: generate
generate:
	cd tracker/ebpf && $(GO) generate .
	$(GO) test ./tracker/ebpf/ -run '^TestGeneratedCurrent$$' -update -count=1
