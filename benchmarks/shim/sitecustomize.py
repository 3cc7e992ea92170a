"""Measurement only (benchmarks/reference_latency.py): lets timm import where torchvision cannot.

timm imports torchvision when it starts, for data transforms and ops that the models timed
here never call. Named ``sitecustomize`` so that every interpreter started with this folder on
PYTHONPATH (the timer's clean child processes too) installs it before anything imports timm.
Where a real torchvision can be found, it does nothing.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types


class _Placeholder(type):
    def __getattr__(cls, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return attr  # enum members such as InterpolationMode.NEAREST: distinct strings


class _Anything(metaclass=_Placeholder):
    def __init__(self, *args, **kwargs) -> None:
        raise RuntimeError("torchvision is not installed: benchmarks/shim only lets timm import")


def _module_getattr(attr: str):
    if attr.startswith("__"):
        raise AttributeError(attr)
    return _Anything


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = _module_getattr
        return module

    def exec_module(self, module) -> None:
        pass


if importlib.util.find_spec("torchvision") is None:
    sys.meta_path.insert(0, _TorchvisionStandIn())
