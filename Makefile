# IMP-CDR build, run and test entry points. `make run` and `make test` work on a fresh clone after
# `npm ci`; both build first.

NODE ?= node
PROTO_DIR := modules/protocol
GENERATED := $(PROTO_DIR)/generated
PROTO_FILES := $(PROTO_DIR)/imp.proto $(PROTO_DIR)/control.proto $(PROTO_DIR)/replication.proto $(PROTO_DIR)/pairing.proto
TS_SOURCES := $(shell find services modules hw firmware test bench -name '*.ts' -not -path '*/generated/*' 2>/dev/null)

.PHONY: all build run run-pairing test lint bench bench-replication bench-snmp bench-imp-client bench-keys bench-dns mib-lint package bundle clean proto

all: build

node_modules/.package-lock.json: package.json package-lock.json
	npm ci

$(GENERATED)/messages.js: $(PROTO_FILES) Makefile node_modules/.package-lock.json
	mkdir -p $(GENERATED)
	npx pbjs -t static-module -w es6 --dependency ../protobuf-runtime.js --force-number \
		--no-verify --no-delimited \
		-o $@.tmp $(PROTO_FILES)
	mv $@.tmp $@

$(GENERATED)/messages.d.ts: $(GENERATED)/messages.js
	npx pbts -o $@ $<

proto: $(GENERATED)/messages.d.ts

dist/.built: $(GENERATED)/messages.d.ts $(TS_SOURCES) tsconfig.json
	npx tsc -p tsconfig.json
	mkdir -p dist/$(GENERATED)
	cp $(GENERATED)/messages.js dist/$(GENERATED)/messages.js
	touch $@

build: dist/.built

# Starts a single-node repository with everything under ./var, listening on 127.0.0.1.
run: build
	$(NODE) dist/services/repository/main.js --dev

# Starts the pairing daemon beside `make run`, with the same ./var/cdr.yaml; its SSH port is 7302.
run-pairing: build
	$(NODE) dist/services/pairing/main.js --dev

test: build
	npx ava

lint: build
	npx eslint .

bench: build
	$(NODE) dist/bench/run.js

# Replication lag (median and 99th percentile) between two paired nodes at a fixed Observe rate.
bench-replication: build
	$(NODE) dist/bench/replication.js --rate 200 --seconds 10
	$(NODE) dist/bench/replication.js --rate 500 --seconds 10

# varbinds/s of snmpbulkwalk over IMP-CDR-MIB against snmpd's own MIB-II (needs snmpd and snmp).
bench-snmp: build
	$(NODE) dist/bench/snmp-walk.js

# IMP-CDR-MIB must pass smilint at level 6 without a message; SMIPATH supplies the SMIv2 base modules.
mib-lint: node_modules/.package-lock.json
	SMIPATH=node_modules/net-snmp/lib/mibs smilint -l 6 -s packaging/mib/IMP-CDR-MIB.txt
# Bytes on the wire per reported session, aggregated against one Observe per session.
bench-imp-client: build
	$(NODE) dist/bench/imp-client-wire.js

# IPv4 key normalisation against parsing with ipaddr.js, on the addresses make bench uses.
bench-keys: build
	$(NODE) dist/bench/keys.js

# DNS front against rbldnsd, and the query-through cache with 8 IMPs (needs dnsperf and rbldnsd).
bench-dns: build
	$(NODE) dist/bench/dns-front.js

# Builds build/imp-cdr_<version>_<arch>.deb; packaging/build-deb.sh says what goes in it. Without
# IMP_CDR_RELEASE_KEY (the release signing key) it ships the public half of a development key made
# once under var/firmware-dev-key/.
package: build
	bash packaging/build-deb.sh build

# Builds the package and build/imp-cdr_<version>_<arch>.bundle, signed with the key the package ships.
bundle: build
	bash packaging/build-deb.sh --bundle build

clean:
	rm -rf dist $(GENERATED)
