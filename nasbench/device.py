"""The one place a ``--device`` value becomes a ``torch.device`` (timing, search, training).

Apple's MPS is accepted only where the caller says it can use it (``allow_mps``): proxy
training synchronises MPS and reads its memory, but latency timing synchronises only
CUDA, so an MPS forward would be timed as its kernel launches.
"""

from __future__ import annotations

import torch

from nasbench.errors import UserError


def resolve_device(spec: str | torch.device | None, *, allow_mps: bool = False) -> torch.device:
    """'auto' (or None) -> cuda when available, then mps (if allowed), else cpu; any other
    value is checked against what torch sees, so a bad one is one UserError line. A CUDA
    device always gets its index, so ``cuda`` names the same GPU everywhere it is passed."""
    choices = "auto, cpu, cuda, cuda:N or mps" if allow_mps else "auto, cpu, cuda or cuda:N"
    if spec is None or str(spec) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps" if allow_mps and torch.backends.mps.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device '{spec}' (use {choices})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {spec} requested but CUDA is not available on this machine (torch "
                            f"{torch.__version__} sees no CUDA GPU); use --device cpu or auto")
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise UserError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return torch.device("cuda", index)
    if dev.type == "mps" and allow_mps:
        if not torch.backends.mps.is_available():
            raise UserError("--device mps requested but MPS is not available on this machine; use --device cpu "
                            "or auto")
        return dev
    if dev.type != "cpu":
        raise UserError(f"unsupported device '{spec}' (use {choices})")
    return dev
