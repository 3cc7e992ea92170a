"""The two terminals nasbench writes to, made in one place.

Rich markup is off on both: study names, file names, budgets and model names are user
text, and with markup on rich reads ``[v2]`` in ``model[v2].yaml`` as a tag (the name
is printed without it) and raises MarkupError on ``[/]``. Colour is given as styles of
``Text`` spans instead (``styled``), which never parse their content.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.text import Text

# Not a terminal (pipes, CI logs): a wide fixed width, so tables are not squeezed.
PIPE_WIDTH = 200


def stdout_console() -> Console:
    return Console(markup=False) if sys.stdout.isatty() else Console(markup=False, width=PIPE_WIDTH)


def stderr_console() -> Console:
    return Console(stderr=True, markup=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """A line from plain strings and ``(text, style)`` pairs; nothing in them is parsed."""
    return Text.assemble(*parts)


def error_line(message: str) -> Text:
    return styled(("error:", "bold red"), " ", message)
