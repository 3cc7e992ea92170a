"""Each model timed in its own clean process, so that nothing run before can change its figure.

Measured (benchmarks/results/latency_isolation_cpu.md): after fvcore/thop and other models
in the same process, ghostnetv3_100 and mobilevit_xxs run 9-14% slower than in a fresh
process, with no page faults in either: the process image (heap layout, allocator caches)
carries the history. A child forked from a fork server that has only imported torch times
them like a fresh process. The fork server is a fresh interpreter started on first use
(not a fork of this process), so it stays clean however long this process has run.

One child per model keeps the alternating rounds interleaved: the parent only asks each
child in turn for its next chunk of runs (``LocalRunner`` does the timing inside the child).
The model goes to the child as ``torch.save`` bytes, so its weights are ordinary memory of
the child; a model whose class the child cannot import (a factory defined in a user's
file) raises ``NotIsolated`` and is timed in this process, which its row says.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import multiprocessing.connection
import sys
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nasbench.errors import first_line
from nasbench.metrics import backends

if TYPE_CHECKING:
    from nasbench.metrics.latency import _Chunk, _Setup

START_METHOD = "forkserver"
PRELOAD = ["torch", "nasbench.metrics.latency"]  # imported once by the server, not by every child


class NotIsolated(Exception):
    """This model cannot be timed in a child process (the reason is its one-line message)."""


def _context():
    if START_METHOD not in multiprocessing.get_all_start_methods():
        raise NotIsolated(f"no {START_METHOD} processes on this platform")
    ctx = multiprocessing.get_context(START_METHOD)
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


@contextlib.contextmanager
def _main_not_reimported():
    """multiprocessing makes each child import the parent's ``__main__`` again (a user's script,
    with whatever it does at import); the timing child needs none of it, so hide it while starting."""
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    for k in saved:
        setattr(main, k, None) if k == "__spec__" else delattr(main, k)
    try:
        yield
    finally:
        main.__dict__.update(saved)


class ChildRunner:
    """The parent's handle on one model's child: the same methods as ``LocalRunner``."""

    def __init__(self, conn: multiprocessing.connection.Connection, process) -> None:
        self.conn, self.process = conn, process

    def _ask(self, *message: Any) -> Any:
        self.conn.send(message)
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"timing child failed: {value}")
        return value

    def warmup(self, runs: int) -> int | None:
        return self._ask("warmup", runs)

    def probe(self) -> float:
        return self._ask("probe")

    def chunk(self, runs: int) -> list[float]:
        return self._ask("chunk", runs)

    def chunk_load(self) -> _Chunk:
        return self._ask("chunk_load")

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(("close",))
            except OSError:
                pass
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self.conn.close()


def start_child(model: nn.Module, shape: tuple[int, ...], setup: _Setup) -> tuple[ChildRunner, backends.Prepared]:
    """Start ``model``'s child and prepare it there; raises NotIsolated (time it here instead)
    or BackendError (the backend cannot run it: the same one line as in process)."""
    try:
        buffer = io.BytesIO()
        torch.save(model, buffer)
    except Exception as exc:  # a model pickle refuses (lambdas, open files ...)
        raise NotIsolated(f"not picklable: {first_line(exc)}") from None
    ctx = _context()
    parent, child = ctx.Pipe()
    process = ctx.Process(target=serve, args=(child, buffer.getvalue(), shape, setup), daemon=True)
    with _main_not_reimported():
        process.start()
    child.close()
    runner = ChildRunner(parent, process)
    try:
        status, value = parent.recv()
    except EOFError:
        runner.close()
        raise NotIsolated(f"the child exited (code {process.exitcode})") from None
    if status == "ok":
        detail, max_abs_diff, setup_s = value
        return runner, backends.Prepared(None, setup.backend, max_abs_diff, setup_s, detail)
    runner.close()
    if status == "backend":
        raise backends.BackendError(value)
    raise NotIsolated(value)


def serve(conn: multiprocessing.connection.Connection, payload: bytes, shape: tuple[int, ...], setup: _Setup) -> None:
    """The child: rebuild the model, prepare it like ``time_models`` would, then answer the
    parent's warmup / probe / chunk / chunk_load requests until told to close."""
    from nasbench.metrics.latency import LocalRunner, prepare_local, steady_heap, torch_settings

    steady_heap()  # before the model's memory exists, as in the parent
    with torch_settings(setup.threads):
        try:
            model = torch.load(io.BytesIO(payload), weights_only=False)
        except Exception as exc:  # e.g. a class defined in a user's file that this process cannot import
            conn.send(("rebuild", f"cannot be rebuilt in a clean process: {first_line(exc)}"))
            return
        try:
            prepared = prepare_local(model, shape, setup)
        except backends.BackendError as exc:
            conn.send(("backend", str(exc)))
            return
        conn.send(("ok", (prepared.detail, prepared.max_abs_diff, prepared.setup_s)))
        runner = LocalRunner(prepared.call, setup.dev)
        settle(runner)
        while True:
            op, *args = conn.recv()
            if op == "close":
                return
            try:
                conn.send(("ok", getattr(runner, op)(*args)))
            except Exception as exc:  # reported in the parent as one line
                conn.send(("error", first_line(exc)))


SETTLE_MAX_RUNS = 30
SETTLE_MAX_S = 1.0  # a 0.5 s detector forward settles in two runs; it must not cost 15 s


def settle(runner) -> int:
    """Forwards until one takes no page fault (at most SETTLE_MAX_RUNS, or SETTLE_MAX_S of
    forwards); returns how many ran.

    A forked child shares the server's memory copy-on-write, so its first forwards fault on
    every page they write; a process that had already run the model would not (mobilevit_xs:
    12.6 faults per timed run after a 3-run warm-up, 0.07 after settling)."""
    from nasbench.metrics.latency import _minor_faults

    started = time.perf_counter()
    for runs in range(1, SETTLE_MAX_RUNS + 1):
        before = _minor_faults()
        runner.warmup(1)
        if _minor_faults() == before or time.perf_counter() - started > SETTLE_MAX_S:
            return runs
    return SETTLE_MAX_RUNS
