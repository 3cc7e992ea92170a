"""Compile and run one model in a throw-away process: ``python -m nasbench.metrics.compile_probe``.

Run by ``backends.compile_crash`` before the ``compile`` backend compiles a model in the
measuring process. Inductor's generated CPU code can corrupt the heap (VOLO, every preset,
torch 2.13: glibc aborts with "free(): corrupted unsorted chunks"); a crash here costs a
child process, not the whole compare.

Reads the model that its parent pickled with ``torch.save`` from stdin (never a file, never
anyone else's data: the parent built that model itself) and the input as arguments:
``SHAPE`` (comma-separated ints), ``DTYPE`` (a torch dtype name) and the thread count.
Exit 0: compiled and ran; 3: the model cannot be unpickled here (a class from a user's
``file.py``), nothing was probed; killed by a signal: the crash the parent reports.
"""

from __future__ import annotations

import io
import sys

import torch


def main(argv: list[str]) -> int:
    shape = tuple(int(v) for v in argv[0].split(","))
    dtype, threads = getattr(torch, argv[1]), int(argv[2])
    torch.set_num_threads(threads)
    try:
        # the parent's own in-memory model, piped to this child (see the module docstring)
        model = torch.load(io.BytesIO(sys.stdin.buffer.read()), weights_only=False)
    except Exception:  # noqa: BLE001 - not loadable in another process: no probe
        return 3
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.randn(shape, dtype=dtype, device=device)
    with torch.inference_mode():
        compiled = torch.compile(model, dynamic=False)
        for _ in range(3):
            compiled(x)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
