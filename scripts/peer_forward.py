"""PyTorch + transformers side of `rankwise bench forward`: same model, same batch, 2 threads.

Usage: python peer_forward.py MODEL_DIR IDS_JSON ITERS THREADS
Prints one JSON line: {"tokens_per_s": ..., "median_s": ..., "torch": version}.
"""
import json, sys, time

import torch
from transformers import BertModel

model_dir, ids_path, iters, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
spec = json.load(open(ids_path))
B, T = spec["batch"], spec["seq"]
ids = torch.tensor(spec["ids"], dtype=torch.long).view(B, T)
mask = torch.ones_like(ids)
model = BertModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
times = []
with torch.inference_mode():
    for i in range(iters + 2):
        t0 = time.perf_counter()
        model(input_ids=ids, attention_mask=mask)
        if i >= 2:
            times.append(time.perf_counter() - t0)
times.sort()
med = times[len(times) // 2]
print(json.dumps({"tokens_per_s": B * T / med, "median_s": med, "torch": torch.__version__, "threads": torch.get_num_threads()}))
