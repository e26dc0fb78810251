"""llama.cpp (llama-cpp-python, scripts/llamacpp-env.sh) loads a Rankwise adapter GGUF onto the base GGUF and generates
what `rankwise generate --adapter` generated (greedy), and the adapter changes at least one answer of the base model.

Usage: python check_llamacpp_adapter.py BASE_GGUF ADAPTER_GGUF|none PROMPTS_JSONL RANKWISE_OUTPUT_JSONL MAX_TOKENS
With none, BASE_GGUF is a merged model (`rankwise merge --gguf`) and only the generations are compared.
PROMPTS_JSONL: {"messages": [...]} per line (the model's chat template applies); RANKWISE_OUTPUT_JSONL: `rankwise
generate --output` of the same prompts with the adapter.
"""
import json
import sys

from llama_cpp import Llama

base, adapter, prompts_path, ours_path, max_tokens = sys.argv[1:6]
prompts = [json.loads(line)["messages"] for line in open(prompts_path)]
ours = [json.loads(line)["output"] for line in open(ours_path)]


def generate(lora):
    options = dict(model_path=base, n_threads=2, verbose=False, n_ctx=1024, seed=0)
    if lora:
        options["lora_path"] = lora
    llm = Llama(**options)
    return [llm.create_chat_completion(messages=m, max_tokens=int(max_tokens), temperature=0.0, top_k=1)
            ["choices"][0]["message"]["content"] for m in prompts]


with_adapter = generate(None if adapter == "none" else adapter)
without = generate(None) if adapter != "none" else []
mismatches = [(p[-1]["content"], o, t) for p, o, t in zip(prompts, ours, with_adapter) if o.strip() != t.strip()]
changed = sum(a.strip() != b.strip() for a, b in zip(with_adapter, without)) if adapter != "none" else -1
if mismatches or changed == 0:
    for prompt, o, t in mismatches[:3]:
        print(f"{prompt!r}: rankwise {o!r} vs llama.cpp {t!r}")
    if changed == 0:
        print("the adapter changes no answer of the base model: nothing was checked")
    sys.exit(1)
changes = f"; the adapter changes {changed} of the base model's answers" if changed >= 0 else ""
print(f"ok: {len(prompts)} prompts generate alike{changes}")
