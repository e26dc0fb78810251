"""SmolLM2 logits and greedy generations by Hugging Face transformers, loading the model from the GGUF file itself
(float32 `LlamaForCausalLM`): the decoder's parity reference.

  python scripts/make_llama_reference.py SmolLM2-135M-Instruct.Q4_1.gguf   (the peer env: scripts/peer-env.sh)

Writes Tests/Fixtures/llama/smollm2-reference.safetensors: for each prompt i, `prompt{i}.ids` (the token ids,
encoded by transformers' tokenizer from the same file, chat template applied to the chat prompts), `prompt{i}.last`
(the logits of the last position, all 49,152), `prompt{i}.slice` (the logits of every position for the first 512
token ids) and `prompt{i}.greedy` (the 24 tokens greedy decoding adds).
"""
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "llama")
os.makedirs(OUT, exist_ok=True)
model_path = os.path.abspath(sys.argv[1])
directory, name = os.path.dirname(model_path), os.path.basename(model_path)
tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, torch_dtype=torch.float32)
model.eval()
torch.manual_seed(0)

chats = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about autumn leaves."}],
]
prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
prompts.append("The quick brown fox jumps over the lazy dog. In the beginning")
tensors = {}
for i, prompt in enumerate(prompts):
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float().numpy()
        generated = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                   max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    tensors[f"prompt{i}.ids"] = np.array(ids, dtype=np.int64)
    tensors[f"prompt{i}.last"] = np.ascontiguousarray(logits[-1])
    tensors[f"prompt{i}.slice"] = np.ascontiguousarray(logits[:, :512])
    tensors[f"prompt{i}.greedy"] = generated[0, len(ids):].numpy().astype(np.int64)
    print(i, len(ids), "tokens; greedy:", repr(tokenizer.decode(generated[0, len(ids):])))
save_file(tensors, os.path.join(OUT, "smollm2-reference.safetensors"))
