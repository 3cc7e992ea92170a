"""nasbench: hardware-aware NAS and honest comparison of lightweight vision backbones.

The Python API (``nasbench.create_model``, ``measure``, ``compare``, ``search``) is what this
module exports; it is imported on first use, so ``import nasbench`` stays light.
"""

__version__ = "0.1.0"

_API = ("create_model", "measure", "compare", "search")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from nasbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'nasbench' has no attribute {name!r}")
