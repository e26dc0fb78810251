"""Writes the fuzzing seed corpus, Tests/FuzzCorpus/<target>/: small valid inputs of every format Rankwise
reads, from which rankwise-fuzz mutates. Standard library only. Crash cases found later are added to
the same folders by hand (they are replayed on every run).
Run: python3 scripts/make_fuzz_corpus.py [all-MiniLM-L6-v2 directory, for the tokenizer and config]"""
import json, os, struct, sys

root = os.path.join(os.path.dirname(__file__), "..", "Tests", "FuzzCorpus")
model = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/rankwise/models/all-MiniLM-L6-v2")


def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    header, blobs, off = {}, b"", 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs += raw
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blobs


f32 = lambda *v: struct.pack(f"<{len(v)}f", *v)
put("safetensors", "two.safetensors", safetensors({"a.weight": ("F32", [2, 3], f32(1, 2, 3, 4, 5, 6)),
                                                   "b": ("I64", [2], struct.pack("<2q", 7, -1))}, {"format": "pt"}))
put("safetensors", "empty.safetensors", safetensors({}))
put("safetensors", "scalar.safetensors", safetensors({"s": ("F32", [], f32(3.5)), "z": ("F32", [0, 4], b"")}))

put("adapter-config", "lora.json", json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.05,
    "target_modules": ["query", "value"], "use_rslora": False, "task_type": "SEQ_CLS", "modules_to_save": ["classifier"],
    "base_model_name_or_path": "minilm"}, indent=2))
put("adapter-config", "adalora.json", json.dumps({"peft_type": "ADALORA", "r": 2, "init_r": 3, "target_r": 2, "lora_alpha": 8,
    "target_modules": ["query"], "rank_pattern": {"encoder.layer.0.attention.self.query": [True, False, True]},
    "tinit": 1, "tfinal": 2, "deltaT": 1, "total_step": 10, "task_type": "SEQ_CLS"}, indent=2))
put("rankwise-json", "rankwise.json", json.dumps({"labelNames": ["negative", "neutral", "positive"], "problem": "single_label_classification",
    "maxLength": 128, "baseModel": "minilm", "method": "lora"}, indent=2))

put("yaml-config", "train.yaml", "train: tweets\nmethod: adalora\ninit_r: 12\nr: 8\nlr: 5e-3\nepochs: 1\n"
    "target_modules: [query, value]\nlabels:\n  - negative\n  - positive\n# comment\n")
put("yaml-config", "flags.yaml", "dedup: true\npadded: false\nsampler: random\nmax-train-examples: 100\nseed: 7\n")

put("csv", "tweets.csv", 'text,label\n"hello, world",positive\nbad day,negative\n"quoted ""inner"" text",neutral\nsame,positive\n')
put("csv", "pairs.tsv", "sentence1\tsentence2\tlabel\nA man eats.\tSomeone eats.\tentailment\nA dog.\tA cat.\tcontradiction\n")
put("csv", "rows.jsonl", '{"text": "fine", "label": "pos"}\n{"text": "bad", "label": "neg", "extra": [1, 2]}\n{"text": "ok", "label": 1}\n')

if os.path.exists(os.path.join(model, "tokenizer.json")):
    tok = json.load(open(os.path.join(model, "tokenizer.json")))
    keep = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "man", "eat", "##s", "##ing", ".", ",", "!", "cat", "dog", "hello", "world"]
    tok["model"]["vocab"] = {t: i for i, t in enumerate(keep)}
    tok["added_tokens"] = [t for t in tok.get("added_tokens", []) if t["content"] in keep[:5]]
    for t in tok["added_tokens"]:
        t["id"] = keep.index(t["content"])
    pp = tok.get("post_processor") or {}
    for name, spec in (pp.get("special_tokens") or {}).items():
        spec["ids"] = [keep.index(name)] if name in keep else spec["ids"]
    put("tokenizer", "tokenizer.json", json.dumps(tok, indent=1))
    put("model-config", "config.json", open(os.path.join(model, "config.json")).read())
print("wrote", root)
