# Fieldcast: `make run` starts a server with a demo session; `make test` runs every test.
# Both install the Debian packages they need first (as root; otherwise they print the line).

DATA ?= ./data
BIN := target/release/fieldcast

.PHONY: run build test bench docker docker-test deb deb-test deps-run deps-test browser-deps clean

run: build
	@if [ -f "$(DATA)/api-token" ]; then echo "operator token: in $(DATA)/api-token (cat $(DATA)/api-token)"; fi
	$(BIN) serve --demo --data $(DATA)

build:
	scripts/deps.sh build
	cargo build --release --locked

test:
	scripts/deps.sh test
	cd tests/browser && npm ci --no-audit --no-fund
	cargo test --release --locked --workspace -- --test-threads=1
	# The sans-IO core's tests again in the dev profile, where arithmetic overflow panics (its
	# seeded mutation test of the RTMP, AMF0 and FLV parsers among them): a build of that crate
	# and its few pure dependencies only.
	cargo test --locked -p fieldcast-core

bench: build
	bench/run.sh $(BENCH_ARGS)

# What packaging needs: the build packages, unless FIELDCAST_BIN names a binary built elsewhere
# (CI hands over the one its fresh root built).
PACKAGING_DEPS := $(if $(FIELDCAST_BIN),true,scripts/deps.sh build)

# The runtime image (docker/Dockerfile) from a release build of this checkout.
docker:
	$(PACKAGING_DEPS)
	scripts/docker.sh

# The image as a user runs it: health check, RTMP in, WHEP out, a restart, a stop, no root.
docker-test:
	$(PACKAGING_DEPS)
	scripts/docker-test.sh

# The Debian package (target/debian/fieldcast_VERSION_ARCH.deb).
deb:
	$(PACKAGING_DEPS)
	scripts/deb.sh

# The package installed in a fresh Debian 12 container, its unit verified and run.
deb-test:
	$(PACKAGING_DEPS)
	scripts/deb-test.sh

clean:
	cargo clean
	rm -rf tests/browser/node_modules
