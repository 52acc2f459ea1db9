# Fieldcast: `make run` starts a server with a demo session; `make test` runs every test.
# Both install the Debian packages they need first (as root; otherwise they print the line).

DATA ?= ./data
BIN := target/release/fieldcast

.PHONY: run build test bench deps-run deps-test browser-deps clean

run: build
	@if [ -f "$(DATA)/api-token" ]; then echo "operator token: $$(cat $(DATA)/api-token)"; fi
	$(BIN) serve --demo --data $(DATA)

build:
	scripts/deps.sh build
	cargo build --release --locked

test:
	scripts/deps.sh test
	cd tests/browser && npm ci --no-audit --no-fund
	cargo test --release --locked -- --test-threads=1
	# The parsers' seeded mutation test again in the dev profile, where overflow panics.
	cargo test --locked --test mutation

bench: build
	bench/run.sh $(BENCH_ARGS)

clean:
	cargo clean
	rm -rf tests/browser/node_modules
