"""numpy side of `rankwise bench gemm`: best-of-N float32 n x n x n matmul GFLOPS as one JSON line."""
import json, sys, time

import numpy as np

n, reps = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(1)
a = rng.random((n, n), dtype=np.float32) - 0.5
b = rng.random((n, n), dtype=np.float32) - 0.5
a @ b
best = min((lambda t0: (a @ b, time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(reps))
blas = "?"
try:
    cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    blas = f'{cfg.get("name")} {cfg.get("version")}'
except Exception:
    pass
print(json.dumps({"gflops": 2 * n ** 3 / best / 1e9, "blas": blas}))
