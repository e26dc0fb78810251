"""Golden tokenizations of SmolLM2 by Hugging Face transformers, loading the tokenizer from the GGUF file itself.

  python scripts/make_bpe_reference.py SmolLM2-135M-Instruct.Q4_1.gguf   (the peer env: scripts/peer-env.sh)

Writes Tests/Fixtures/bpe/smollm2-golden.json: for every text of the golden set (code, emoji, accents, CJK, digits,
runs of spaces and newlines, special tokens inside text, the empty text) the ids of `encode` (no special tokens
added: the file says add_bos_token false) and the text `decode` gives back with and without special tokens; and
the chat template applied to conversations, as text and as ids.
"""
import json
import os
import sys

from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "bpe")
os.makedirs(OUT, exist_ok=True)
model = os.path.abspath(sys.argv[1])
tokenizer = AutoTokenizer.from_pretrained(os.path.dirname(model), gguf_file=os.path.basename(model))

texts = [
    "",
    "Hello world",
    "Hello, world! How's it going? I'm fine; we'll see, they've said, you'd think, we're here.",
    "def add(a, b):\n    return a + b  # sum\n\n\nprint(add(2, 40))",
    "for (int i = 0; i < n; ++i) { x[i] *= 2; }",
    "Ünïcödé àccents: café, naïve, façade, Ångström, Øre",
    "日本語のテキストと中文文本，还有한국어.",
    "emoji 😀👍🏽 and 👩‍👩‍👧 family, flags 🇫🇷",
    "numbers 12345 and 3.14159, 1,000,000 and ½ ² ³ Ⅻ",
    "  leading spaces,   inner runs,\ttabs\t\tand trailing   ",
    "lines\n\n\nwith\r\nbreaks\n",
    "   ",
    "\n",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more<file_sep>and <|im_end|>",
    "<|im_start",
    "'s 'S 't 're 've 'm 'll 'd's",
    "Mixed:ABC123def456 x2 X² ID#42 e-mail@example.com https://example.org/a?b=c",
    "Ελληνικά, русский текст, עברית, العربية",
    "a" * 300,
    "\u00a0non-breaking\u2009thin\u3000ideographic space",
    "\x00\x01 control \x7f bytes",
]
conversations = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"}],
]
golden = {"model": os.path.basename(model), "texts": [], "chats": []}
for text in texts:
    ids = tokenizer.encode(text, add_special_tokens=False)
    golden["texts"].append({
        "text": text, "ids": ids,
        "decoded": tokenizer.decode(ids, skip_special_tokens=False),
        "decoded_skip_special": tokenizer.decode(ids, skip_special_tokens=True),
    })
for messages in conversations:
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    golden["chats"].append({
        "messages": messages, "text": rendered,
        "ids": tokenizer.encode(rendered, add_special_tokens=False),
    })
with open(os.path.join(OUT, "smollm2-golden.json"), "w") as f:
    json.dump(golden, f, ensure_ascii=False, indent=1)
print("wrote", len(texts), "texts and", len(conversations), "chats")
