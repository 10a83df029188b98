# IMP-CDR build, run and test entry points. `make run` and `make test` work on a fresh clone after
# `npm ci`; both build first.

NODE ?= node
PROTO_DIR := modules/protocol
GENERATED := $(PROTO_DIR)/generated
PROTO_FILES := $(PROTO_DIR)/imp.proto $(PROTO_DIR)/control.proto
TS_SOURCES := $(shell find services modules hw firmware test bench -name '*.ts' -not -path '*/generated/*' 2>/dev/null)

.PHONY: all build run test lint bench package clean proto

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

# Builds build/imp-cdr_<version>_<arch>.deb; packaging/build-deb.sh says what goes in it.
package: build
	bash packaging/build-deb.sh build

clean:
	rm -rf dist $(GENERATED)
