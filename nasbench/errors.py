"""User-facing errors: the CLI turns these into one line on stderr and exit code 2."""


class UserError(Exception):
    """Bad input from the user (unknown name, malformed file, impossible option).

    The message must fit on one line and say what to do instead.
    """

    exit_code = 2


class BuildError(UserError):
    """A config the family's builder rejected (ValueError, RuntimeError ... inside ``build``):
    one line in ``compare``; in ``search`` the trial fails with this reason and the search goes on."""
