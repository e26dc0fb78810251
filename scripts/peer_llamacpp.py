"""llama.cpp side of `rankwise bench generate` (through llama-cpp-python, scripts/llamacpp-env.sh): the same GGUF
file, the same prompt ids, greedy decoding of exactly N new tokens, the same thread count.

Usage: python peer_llamacpp.py GGUF_FILE IDS_JSON NEW_TOKENS REPEATS THREADS
Prints one JSON line: {"prompt_tokens_per_s", "generate_tokens_per_s", "peak_rss_mib", "version", "threads"}
(medians).
"""
import json
import sys
import time

import llama_cpp
from peer_memory import peak_rss_mib

path, ids_path = sys.argv[1], sys.argv[2]
new_tokens, repeats, threads = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ids = json.load(open(ids_path))
model = llama_cpp.Llama(model_path=path, n_ctx=len(ids) + new_tokens + 8, n_threads=threads, n_threads_batch=threads,
                        n_batch=max(len(ids), 8), verbose=False, logits_all=False)

prompt_rates, generate_rates = [], []
for _ in range(repeats + 1):
    model.reset()
    start = time.perf_counter()
    model.eval(ids)
    prompt_rates.append(len(ids) / (time.perf_counter() - start))
    start = time.perf_counter()
    for _ in range(new_tokens):
        token = model.sample(temp=0.0)
        model.eval([token])
    generate_rates.append(new_tokens / (time.perf_counter() - start))
prompt_rates, generate_rates = sorted(prompt_rates[1:]), sorted(generate_rates[1:])
print(json.dumps({"prompt_tokens_per_s": prompt_rates[len(prompt_rates) // 2],
                  "generate_tokens_per_s": generate_rates[len(generate_rates) // 2],
                  "peak_rss_mib": peak_rss_mib(),
                  "version": "llama-cpp-python " + llama_cpp.__version__, "threads": threads}))
