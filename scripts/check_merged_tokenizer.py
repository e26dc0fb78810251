"""The tokenizer files `rankwise merge` writes next to a model merged from a GGUF base load with transformers'
AutoTokenizer and tokenize as transformers' tokenizer read from the GGUF file itself: the texts of
Tests/Fixtures/bpe/smollm2-golden.json (code, accents, CJK, emoji, digits, whitespace runs, special tokens in text),
decoding, the special tokens and the chat template.

Usage: python check_merged_tokenizer.py MERGED_DIR BASE.gguf
Exit 0 and one line "ok ..." when all agree; 1 and the differences otherwise.
"""
import json
import os
import sys

from transformers import AutoTokenizer

merged, gguf = sys.argv[1], sys.argv[2]
ours = AutoTokenizer.from_pretrained(merged)
reference = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
golden = json.load(open(os.path.join(root, "Tests", "Fixtures", "bpe", "smollm2-golden.json")))
differences = []
for entry in golden["texts"]:
    text = entry["text"]
    a, b = ours.encode(text, add_special_tokens=True), reference.encode(text, add_special_tokens=True)
    if a != b:
        differences.append(f"encode {text!r}: {a[:12]} vs {b[:12]}")
    if ours.decode(b) != reference.decode(b) or ours.decode(b, skip_special_tokens=True) != reference.decode(
            b, skip_special_tokens=True):
        differences.append(f"decode {text!r}")
for chat in golden["chats"]:
    for prompt in (True, False):
        a = ours.apply_chat_template(chat["messages"], tokenize=False, add_generation_prompt=prompt)
        b = reference.apply_chat_template(chat["messages"], tokenize=False, add_generation_prompt=prompt)
        if a != b:
            differences.append(f"chat template: {a!r} vs {b!r}")
for name in ("bos_token", "eos_token", "pad_token"):
    if getattr(ours, name) != getattr(reference, name):
        differences.append(f"{name}: {getattr(ours, name)!r} vs {getattr(reference, name)!r}")
if len(ours) != len(reference):
    differences.append(f"vocabulary {len(ours)} vs {len(reference)}")
if differences:
    print("\n".join(differences[:10]))
    print(f"{len(differences)} differences")
    sys.exit(1)
print(f"ok: {len(golden['texts'])} texts and {len(golden['chats'])} chats tokenize alike, vocabulary {len(ours)}, "
      f"specials {ours.bos_token} {ours.eos_token}")
