"""Device selection shared by the embedder and the torch nuisance models."""

from __future__ import annotations

from causalrec.errors import InputError

_VALID = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | None = "auto") -> str:
    """Return a concrete torch device string for ``device``.

    ``"auto"`` (or ``None``) picks ``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``.
    An explicit ``"cuda"``/``"cuda:N"`` on a machine without CUDA is an input error
    rather than a silent fallback, so a user who asked for the GPU learns they did not get it.
    """
    import torch

    dev = "auto" if device is None else str(device).lower()
    base = dev.split(":")[0]
    if base not in _VALID:
        raise InputError(f"unknown device {device!r}", column="device",
                         fix="use 'auto', 'cpu', 'cuda' (or 'cuda:N') or 'mps'")
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if base == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but no CUDA GPU is visible", column="device",
                         fix="use device='auto' or device='cpu'")
    if base == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise InputError("device 'mps' was requested but MPS is not available", column="device",
                         fix="use device='auto' or device='cpu'")
    return dev
