"""nasbench: hardware-aware NAS and honest comparison of lightweight vision backbones."""

__version__ = "0.1.0"
