"""The search spaces shipped with nasbench, one YAML file per family.

This top-level folder is installed as the package ``nasbench.spaces`` (see pyproject.toml), so a
wheel install finds the same files through ``importlib.resources``.
"""
