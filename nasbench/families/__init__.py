"""One module per model family. Each module exposes ``FAMILIES: list[Family]``.

The zoo discovers families by importing every module in this package that defines
``FAMILIES``; adding a family therefore never touches shared code.
"""
