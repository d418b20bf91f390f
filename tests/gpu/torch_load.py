"""A GPU user for the gpu tests: holds ~2 GiB of GPU memory and runs matmuls (a subprocess).

Usage: torch_load.py SECONDS. Prints "ready" once memory is held and the first
product has run, then keeps the GPU busy until SECONDS have passed or stdin closes.
"""

import sys
import threading
import time

import torch

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
held = torch.empty(2 * 2**30, dtype=torch.uint8, device="cuda")  # 2 GiB, held to the end
a = torch.randn(4096, 4096, device="cuda")
b = torch.randn(4096, 4096, device="cuda")
(a @ b).sum().item()
print("ready", flush=True)

stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
deadline = time.monotonic() + seconds
while not stop.is_set() and time.monotonic() < deadline:
    for _ in range(20):
        c = a @ b
    torch.cuda.synchronize()
del held, c
