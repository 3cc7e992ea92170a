"""User-facing errors: the CLI turns these into one line on stderr and exit code 2."""


class UserError(Exception):
    """Bad input from the user (unknown name, malformed file, impossible option).

    The message must fit on one line and say what to do instead.
    """

    exit_code = 2
