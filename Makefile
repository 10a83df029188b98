# IMP-CDR build, run and test entry points. `make run` and `make test` work on a fresh clone after
# `npm ci`; both build first.

NODE ?= node
PROTO_DIR := modules/protocol
GENERATED := $(PROTO_DIR)/generated
PROTO_FILES := $(PROTO_DIR)/imp.proto $(PROTO_DIR)/control.proto
TS_SOURCES := $(shell find services modules test bench -name '*.ts' -not -path '*/generated/*' 2>/dev/null)

.PHONY: all build run test lint bench bench-dns package clean proto

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

test: build
	npx ava

lint: build
	npx eslint .

bench: build
	$(NODE) dist/bench/run.js

# DNS front against rbldnsd, and the query-through cache with 8 IMPs (needs dnsperf and rbldnsd).
bench-dns: build
	$(NODE) dist/bench/dns-front.js

package: build
	@echo "TODO: the Debian package is not built yet" >&2
	@exit 1

clean:
	rm -rf dist $(GENERATED)
