"""Reading the YAML users give (model configs, search spaces) without alias expansion.

A YAML alias (``*name``) repeats a node by reference; nested, a few hundred bytes expand
to billions of nodes ("billion laughs") and ``yaml.safe_load`` builds all of them. No
config or space of nasbench needs an alias, so one is refused at the first ``*``,
before anything is built.
"""

from __future__ import annotations

from typing import Any

import yaml


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"YAML aliases (*name) are not accepted (line {mark.line + 1}); "
                                 "write the value out")
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` without aliases (raises ``yaml.YAMLError`` at the first one)."""
    loader = _NoAliasLoader(text)  # what yaml.load does, with this SafeLoader subclass
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
