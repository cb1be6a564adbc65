# butterd: build, run and test. Targets that touch the machine need root.
GO      ?= go
BIN     := bin
PKGS    := btrfs-progs docker.io busybox-static dbus systemd systemd-container e2fsprogs util-linux iproute2 openssh-client openssh-server kmod rpm lintian rsync bash zsh fish groff-base
GOTEST  := $(GO) test -count=1

.PHONY: all deps build run bus test unit integration bench killtest fuzz load vet clean pkgbin man completions deb rpm

all: build

# Installs what butterd and its tests need on a fresh Debian machine.
deps:
	@missing=""; for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build:
	$(GO) build -o $(BIN)/butterd ./cmd/butterd
	CGO_ENABLED=0 $(GO) build -o $(BIN)/butterctl ./cmd/butterctl  # static: starts faster

# Runs butterd in the foreground on /var/lib/butterd (a loop-mounted pool
# image is made when it is not on BTRFS), on the system bus (one is started
# where none runs). Extra flags: make run ARGS="--log-level=debug".
run: deps build bus
	./$(BIN)/butterd run $(ARGS)

# Installs butterd's bus policy and makes sure a system bus runs, so that
# butterctl works on a machine without systemd too.
bus: deps
	install -D -m 0644 packaging/dbus/io.butterd.volumes1.conf /usr/share/dbus-1/system.d/io.butterd.volumes1.conf
	@if dbus-send --system --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.GetId >/dev/null 2>&1; then \
		dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig; \
	else \
		echo "no system bus: starting dbus-daemon --system"; \
		mkdir -p /run/dbus && dbus-daemon --system --fork; \
	fi

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# The whole suite: unit tests, then integration and end-to-end tests on real
# BTRFS, D-Bus, systemd and Docker (as root; with CI=true nothing may skip).
test: deps vet build
	$(GOTEST) -timeout 14m ./...

unit:
	$(GOTEST) ./btrfs/... ./service/... ./cmd/...

integration: deps build
	$(GOTEST) -timeout 14m -v ./tests/...

# Times butterd against the bare ioctls and a bare HTTP round trip in the
# same run (at least 1,000 operations each), replication against
# btrfs send | [ssh |] btrfs receive (3 sends of a 256 MiB volume each, the
# incremental check on 1 GiB) and sync against rsync -a (20 rounds), and
# prints the figures side by side with their limits; the raw output stays
# in bin/bench.txt.
# The report is no gate: only a benchmark that breaks fails the target.
bench: deps build
	{ $(GO) test -run '^$$' -bench . -skip 'Replicate|1Percent' -benchtime 1000x -timeout 30m ./tests/ 2>&1; a=$$?; \
	  $(GO) test -run '^$$' -bench Replicate -benchtime 3x -timeout 15m ./tests/ 2>&1; r=$$?; \
	  $(GO) test -run '^$$' -bench 1Percent -benchtime 20x -timeout 20m ./tests/ 2>&1; c=$$?; \
	  $(GO) test -run '^$$' -bench Plan100k -benchtime 20x ./service/retention/ 2>&1; b=$$?; \
	  echo $$((a | r | b | c)) >$(BIN)/bench.status; } | tee $(BIN)/bench.txt | $(GO) run ./tests/benchreport
	@status=$$(cat $(BIN)/bench.status); rm -f $(BIN)/bench.status; exit $$status

# Kills butterd with SIGKILL at random moments of restores, clones, imports,
# purges, schedule changes, syncs it pulls and snapshots pushed to it, and
# checks what each restart finds (tests/kill_test.go,
# tests/kill_repl_test.go), then prints the kills survived per operation; the
# output stays in bin/killtest.txt. BUTTERD_KILL_SEED=N repeats a run,
# BUTTERD_KILLS=N sets the kills per operation.
killtest: deps
	@mkdir -p $(BIN)
	CI=true $(GOTEST) -timeout 10m -v -run '^TestKill$$' ./tests/ 2>&1 | tee $(BIN)/killtest.txt
	@grep -h 'kills survived' $(BIN)/killtest.txt; grep -q '^ok' $(BIN)/killtest.txt

# Load: 64 clients mixing plugin and D-Bus calls on one butterd on a loop
# BTRFS for LOAD_TIME, then checks that nothing leaked; prints the latency
# percentiles of each call kind (the whole output stays in bin/load.txt).
LOAD_TIME ?= 20s

load: deps build
	@mkdir -p $(BIN); { CI=true BUTTERD_LOAD_TIME=$(LOAD_TIME) $(GOTEST) -timeout 30m -run '^TestLoad$$' -v ./tests/ 2>&1; \
	  echo $$? >$(BIN)/load.status; } | tee $(BIN)/load.txt | \
	  sed -n -e 's/^    load_test.go:[0-9]*: //p' -e '/^        time=/d' -e '/^        [^ ]/p' -e '/^--- /p'
	@status=$$(cat $(BIN)/load.status); rm -f $(BIN)/load.status; exit $$status

# Fuzzes every target of the module (each func FuzzX of a _test.go file) for
# FUZZTIME, one after the other, and prints each one's result; logs go to
# bin/fuzz/. A crash is saved under the package's testdata/fuzz/FuzzX/:
# commit it as a regression seed (plain `go test` runs it) and fix the bug.
FUZZTIME ?= 30s

fuzz:
	@mkdir -p $(BIN)/fuzz; fail=0; \
	for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$pkg/*_test.go); do \
	    log=$(BIN)/fuzz/$$fn.log; \
	    if $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg >$$log 2>&1; then \
	      printf 'ok    %-22s %-22s %s\n' $$pkg $$fn "$$(grep -o 'execs: [0-9]*' $$log | tail -1)"; \
	    else \
	      printf 'FAIL  %-22s %-22s %s\n' $$pkg $$fn "$$(grep -m1 -o 'testdata/fuzz/[^ ]*' $$log || echo see $$log)"; fail=1; \
	    fi; \
	  done; \
	done; exit $$fail

# Packages: bin/butterd_VERSION-1_amd64.deb and bin/butterd-VERSION-1.x86_64.rpm,
# built by nfpm (as a library: packaging/nfpm) from binaries stamped with
# VERSION, man pages generated from their --help and butterctl's completions
# generated from its verb list (packaging/gen). make deb VERSION=0.2.0.
VERSION ?= 0.1.0
PKGBIN  := $(BIN)/pkg

pkgbin:
	$(GO) build -trimpath -buildmode=pie -ldflags "-s -w -X main.version=$(VERSION)" -o $(PKGBIN)/butterd ./cmd/butterd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(PKGBIN)/butterctl ./cmd/butterctl

man: pkgbin
	$(GO) run ./packaging/gen man $(VERSION) $(PKGBIN)/man $(PKGBIN)/butterd $(PKGBIN)/butterctl

completions: pkgbin
	$(GO) run ./packaging/gen completions $(PKGBIN)/completions $(PKGBIN)/butterctl

deb: man completions
	$(GO) run ./packaging/nfpm --format deb --version $(VERSION) --bin $(PKGBIN) --out $(BIN)

rpm: man completions
	$(GO) run ./packaging/nfpm --format rpm --version $(VERSION) --bin $(PKGBIN) --out $(BIN)

clean:
	rm -rf $(BIN)
