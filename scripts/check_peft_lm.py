"""A decoder adapter written by Rankwise, loaded by PEFT onto the transformers model made from the same base (a GGUF
file or a Hugging Face directory), gives Rankwise's losses: each example's summed next-token loss over its learnt
tokens, as `rankwise eval --tokens` wrote them, to 1e-3 relative (the decoders' parity standard; relative to 1 nat a
token when the loss is smaller).

Usage: python check_peft_lm.py MODEL ADAPTER_DIR|none TOKENS_JSONL
Exit 0 and one line "ok ..." when every example agrees; 1 and the worst examples otherwise.
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM

path, adapter, tokens_path = sys.argv[1], sys.argv[2], sys.argv[3]
torch.set_num_threads(2)
if os.path.isdir(path) and not os.path.exists(os.path.join(path, "config.json")):
    ggufs = [name for name in os.listdir(path) if name.endswith(".gguf")]
    if len(ggufs) != 1:
        sys.exit(f"{path}: no config.json and {len(ggufs)} .gguf files")
    path = os.path.join(path, ggufs[0])
if os.path.isdir(path):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
else:
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                 dtype=torch.float32)
if adapter != "none":
    from peft import PeftModel
    config = json.load(open(os.path.join(adapter, "adapter_config.json")))
    if config.get("task_type") != "CAUSAL_LM":
        sys.exit(f"{adapter}: task_type {config.get('task_type')!r}, expected CAUSAL_LM")
    model = PeftModel.from_pretrained(model, adapter)
model.eval()
worst = []
moved = []
with torch.no_grad():
    for line in open(tokens_path):
        record = json.loads(line)
        ids = torch.tensor([record["ids"]], dtype=torch.long)
        logits = model(input_ids=ids).logits[0].double()
        learnt = torch.tensor(record["targets"][1:], dtype=torch.bool)
        losses = torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:], reduction="none")
        ours, theirs = record["loss"], float(losses[learnt].sum())
        # Relative to the loss, or to 1 nat a token when it is smaller (a near-zero loss makes relative error noise).
        error = abs(ours - theirs) / max(abs(theirs), float(learnt.sum()), 1e-6)
        worst.append((error, record["line"], ours, theirs))
        if adapter != "none":  # the adapter must matter, or agreeing would prove nothing
            with model.disable_adapter():
                base_logits = model(input_ids=ids).logits[0].double()
            base = float(torch.nn.functional.cross_entropy(base_logits[:-1], ids[0, 1:], reduction="none")[learnt].sum())
            moved.append(abs(theirs - base) / max(abs(base), 1e-6))
worst.sort(reverse=True)
if moved and max(moved) < 1e-3:
    sys.exit(f"the adapter changes no loss by more than {max(moved):.1e} relative: nothing was checked")
if not worst or worst[0][0] > 1e-3:
    for error, line, ours, theirs in worst[:5]:
        print(f"line {line}: rankwise {ours:.6f} vs transformers{'+PEFT' if adapter != 'none' else ''} {theirs:.6f} "
              f"(relative {error:.2e})")
    sys.exit(1)
moves = f", the adapter moves the losses by up to {max(moved):.1%}" if moved else ""
print(f"ok: {len(worst)} examples, worst relative difference {worst[0][0]:.2e}{moves}")
