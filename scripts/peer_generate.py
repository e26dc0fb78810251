"""transformers side of `rankwise bench generate`: the same GGUF file loaded as float32 LlamaForCausalLM, the same
prompt ids, greedy decoding of exactly N new tokens, the same thread count.

Usage: python peer_generate.py GGUF_FILE IDS_JSON NEW_TOKENS REPEATS THREADS
Prints one JSON line: {"prompt_tokens_per_s", "generate_tokens_per_s", "peak_rss_mib", "version",
"threads"} (medians).
"""
import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM
from peer_memory import peak_rss_mib

path, ids_path = sys.argv[1], sys.argv[2]
new_tokens, repeats, threads = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
ids = torch.tensor([json.load(open(ids_path))], dtype=torch.long)
model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                             torch_dtype=torch.float32).eval()

prompt_rates, generate_rates = [], []
with torch.inference_mode():
    for _ in range(repeats + 1):
        start = time.perf_counter()
        model(ids, use_cache=True)
        prompt_seconds = time.perf_counter() - start
        start = time.perf_counter()
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                       do_sample=False, pad_token_id=0)
        total = time.perf_counter() - start
        prompt_rates.append(ids.shape[1] / prompt_seconds)
        # generate() also runs the prompt: the new tokens get what is left after one prompt pass.
        generate_rates.append(new_tokens / max(total - prompt_seconds, 1e-9))
prompt_rates, generate_rates = sorted(prompt_rates[1:]), sorted(generate_rates[1:])
print(json.dumps({"prompt_tokens_per_s": prompt_rates[len(prompt_rates) // 2],
                  "generate_tokens_per_s": generate_rates[len(generate_rates) // 2],
                  "peak_rss_mib": peak_rss_mib(),
                  "version": "torch " + torch.__version__, "threads": torch.get_num_threads()}))
