# Developer entry points for EDS core: setup, build, run, test, bench.
# `make run ARGS="--port 9090"` passes extra flags to the server.

SHELL := /bin/bash
.DEFAULT_GOAL := build

ARGS ?=
FORMAT_DIRS := fhir storage server tests
FORMAT_FILES = $(shell find $(wildcard $(FORMAT_DIRS)) -type f \( -name '*.cpp' -o -name '*.hpp' \) 2>/dev/null) \
               $(wildcard *.cpp *.hpp)

.PHONY: setup build run test test-asan bench bench-search bench-load bench-layout bench-document clean format

setup:
	bash deploy/setup.sh

build: setup
	cmake --preset release && cmake --build --preset release

run: build
	bash deploy/run.sh $(ARGS)

test: build
	ctest --preset release

test-asan: setup
	cmake --preset asan && cmake --build --preset asan && ctest --preset asan

bench: build
	bash tests/bench/read_bench.sh

bench-search: build
	bash tests/bench/search_bench.sh

bench-load: build
	bash tests/bench/load_bench.sh

bench-layout: build
	bash tests/bench/layout_bench.sh

bench-document: build
	bash tests/bench/document_bench.sh

clean:
	rm -rf build

format:
	@command -v clang-format >/dev/null || { echo "clang-format not found (apt-get install clang-format)" >&2; exit 1; }
	$(if $(strip $(FORMAT_FILES)),clang-format -i $(FORMAT_FILES),@echo "no C++ sources to format")
