"""A llama.cpp LoRA adapter written by `rankwise export --gguf`, read back by the `gguf` package: the metadata llama.cpp
requires, and for each pair of tensors the names llama.cpp looks up and the shapes its loader checks against the base
model's tensor (lora_a ne = [in, r], lora_b ne = [r, out], in and out those of the base tensor).

Usage: python check_gguf_adapter.py BASE_GGUF ADAPTER_GGUF EXPECTED_MODULES
Prints "ok: N pairs, ranks ..." and exits 0, or names what is wrong and exits 1.
"""
import sys

import gguf

base_path, adapter_path, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = gguf.GGUFReader(base_path)
adapter = gguf.GGUFReader(adapter_path)


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    value = f.parts[f.data[0]]
    return bytes(value).decode() if f.types[0] == gguf.GGUFValueType.STRING else float(value[0])


problems = []
for key, want in [("general.type", "adapter"), ("adapter.type", "lora"),
                  ("general.architecture", field(base, "general.architecture"))]:
    if field(adapter, key) != want:
        problems.append(f"{key} is {field(adapter, key)!r}, expected {want!r}")
if not (field(adapter, "adapter.lora.alpha") or 0) > 0:
    problems.append("adapter.lora.alpha missing or not positive")
base_shapes = {t.name: [int(x) for x in t.shape] for t in base.tensors}
pairs = {}
for t in adapter.tensors:
    name, _, part = t.name.rpartition(".")
    if part not in ("lora_a", "lora_b") or t.tensor_type != gguf.GGMLQuantizationType.F32:
        problems.append(f"{t.name}: not a float32 .lora_a / .lora_b tensor")
        continue
    pairs.setdefault(name, {})[part] = [int(x) for x in t.shape]
ranks = set()
for name, pair in pairs.items():
    if name not in base_shapes:
        problems.append(f"{name}: no such tensor in the base model")
        continue
    a, b = pair.get("lora_a"), pair.get("lora_b")
    if a is None or b is None:
        problems.append(f"{name}: one of lora_a, lora_b missing")
        continue
    model_in, model_out = base_shapes[name][0], base_shapes[name][1]
    if a[0] != model_in or b[1] != model_out or a[1] != b[0]:
        problems.append(f"{name}: lora_a {a}, lora_b {b} against the base tensor {base_shapes[name]}")
    ranks.add(a[1])
if len(pairs) != expected:
    problems.append(f"{len(pairs)} adapted tensors, expected {expected}")
if problems:
    print("\n".join(problems[:10]))
    sys.exit(1)
print(f"ok: {len(pairs)} pairs, ranks {sorted(ranks)}")
