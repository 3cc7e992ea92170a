"""User-facing errors: the CLI turns these into one line on stderr and exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (unknown name, malformed file, impossible option).

    The message must fit on one line and say what to do instead.
    """

    exit_code = 2


class BuildError(UserError):
    """A config the family's builder rejected (ValueError, RuntimeError ... inside ``build``):
    one line in ``compare``; in ``search`` the trial fails with this reason and the search goes on."""


class MeasureError(BuildError):
    """A candidate that was built but cannot be measured as asked (the backend cannot run it,
    or its timing stayed unstable): the search fails that trial with this reason and goes on."""


def first_line(exc: BaseException, empty: str | None = None) -> str:
    """The first non-blank line of an exception's message, for one-line errors; ``empty``
    (default: the exception's type name) when it has none."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if lines:
        return lines[0]
    return empty if empty is not None else type(exc).__name__
