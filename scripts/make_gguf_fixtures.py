"""GGUF fixtures for the reader's tests and the fuzzer, made with the `gguf` package (the format reference).

  python scripts/make_gguf_fixtures.py [SmolLM2-135M-Instruct.Q4_1.gguf]   (the peer env: scripts/peer-env.sh)

Writes:
- Tests/Fixtures/gguf/tiny.gguf: metadata of every GGUF value type (arrays of numbers and strings, a nested
  array, unicode) and one 3 x 256 tensor of every type Rankwise reads (F32, F16, BF16, Q4_0, Q4_1, Q8_0 quantised
  from seeded normal values by `gguf.quants.quantize`; Q4_K, Q5_K, Q6_K as seeded random blocks with finite
  scales, since the package only dequantises those), with general.alignment 64;
- Tests/Fixtures/gguf/tiny-expected.safetensors: every tensor of tiny.gguf dequantised by `gguf.quants.dequantize`
  (float32, row-major shape);
- with the SmolLM2 file: Tests/Fixtures/gguf/smollm2-blocks.safetensors, real blocks dequantised by the package
  (rows of token_embd in Q8_0, of blk.0.attn_q and blk.29.ffn_down in Q4_1, blk.0.attn_norm in F32);
- Tests/FuzzCorpus/gguf/tiny.gguf: the fuzzer's seed.
"""
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader, GGUFWriter, quants
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "gguf")
CORPUS = os.path.join(ROOT, "Tests", "FuzzCorpus", "gguf")
os.makedirs(OUT, exist_ok=True)
os.makedirs(CORPUS, exist_ok=True)
rng = np.random.default_rng(20261207)


def random_k_blocks(qtype, rows, cols):
    """Random bytes for K-quant blocks, with every f16 scale set to a finite value."""
    block_size, block_bytes = quants.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(rows * cols // block_size, block_bytes), dtype=np.uint8)
    scales = rng.uniform(-0.05, 0.05, size=(blocks.shape[0], 2)).astype(np.float16).view(np.uint8)
    if qtype == T.Q6_K:
        blocks[:, 208:210] = scales[:, 0:2]
    else:
        blocks[:, 0:4] = scales
    return blocks.reshape(rows, cols // block_size * block_bytes)


def tiny():
    path = os.path.join(OUT, "tiny.gguf")
    writer = GGUFWriter(path, "llama")
    writer.add_custom_alignment(64)
    writer.add_uint8("test.uint8", 200)
    writer.add_int8("test.int8", -100)
    writer.add_uint16("test.uint16", 60000)
    writer.add_int16("test.int16", -30000)
    writer.add_uint32("test.uint32", 4000000000)
    writer.add_int32("test.int32", -2000000000)
    writer.add_float32("test.float32", 0.125)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "héllo ✓ 世界")
    writer.add_uint64("test.uint64", 2**63 + 5)
    writer.add_int64("test.int64", -(2**62))
    writer.add_float64("test.float64", -1.5e-300)
    writer.add_array("test.strings", ["a", "", "Ġthe", "<|im_start|>"])
    writer.add_array("test.ints", [1, -2, 3])
    writer.add_array("test.nested", [[1, 2], [3]])
    expected = {}
    rows, cols = 3, 256
    for qtype in (T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K):
        name = f"tensor.{qtype.name.lower()}"
        if qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
            raw = random_k_blocks(qtype, rows, cols)
        else:
            values = rng.normal(0, 1, size=(rows, cols)).astype(np.float32)
            raw = quants.quantize(values, qtype)
        if qtype == T.F32:
            writer.add_tensor(name, raw)
        else:
            writer.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
        expected[name] = np.ascontiguousarray(quants.dequantize(raw, qtype).astype(np.float32).reshape(rows, cols))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    save_file(expected, os.path.join(OUT, "tiny-expected.safetensors"))
    with open(path, "rb") as source, open(os.path.join(CORPUS, "tiny.gguf"), "wb") as seed:
        seed.write(source.read())
    print("wrote", path, os.path.getsize(path), "bytes")


def real_blocks(model):
    reader = GGUFReader(model)
    tensors = {t.name: t for t in reader.tensors}
    picks = {"token_embd.weight": [0, 1, 2, 17, 49151], "blk.0.attn_q.weight": [0, 1, 63, 575],
             "blk.29.ffn_down.weight": [0, 575], "blk.0.attn_norm.weight": None}
    expected = {}
    for name, rows in picks.items():
        tensor = tensors[name]
        values = quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        expected[name] = np.ascontiguousarray(values if rows is None else values.reshape(-1, values.shape[-1])[rows])
    expected_rows = {name: np.array(rows or [], dtype=np.int64) for name, rows in picks.items()}
    save_file({**expected, **{n + ".rows": r for n, r in expected_rows.items()}},
              os.path.join(OUT, "smollm2-blocks.safetensors"))
    print("wrote real blocks of", ", ".join(picks))
    # A fuzz seed with the real tokenizer metadata cut to its first 400 tokens and the merges among them.
    fields = reader.fields
    tokens = [bytes(fields["tokenizer.ggml.tokens"].parts[i]).decode() for i in fields["tokenizer.ggml.tokens"].data]
    kept = set(tokens[:400])
    merges = [bytes(fields["tokenizer.ggml.merges"].parts[i]).decode() for i in fields["tokenizer.ggml.merges"].data]
    merges = [m for m in merges if set(m.split(" ")) <= kept and m.replace(" ", "") in kept]
    types = [int(fields["tokenizer.ggml.token_type"].parts[i][0]) for i in fields["tokenizer.ggml.token_type"].data]
    writer = GGUFWriter(os.path.join(CORPUS, "tokenizer.gguf"), "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens[:400])
    writer.add_token_types(types[:400])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(fields["tokenizer.chat_template"].contents())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print("wrote the tokenizer seed:", len(merges), "merges")


tiny()
if len(sys.argv) > 1:
    real_blocks(sys.argv[1])
