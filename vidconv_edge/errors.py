"""The one exception type that means "bad input": the CLI prints its message and exits 2."""


class UserError(Exception):
    """An error caused by the user's input (unknown model, bad path, wrong shape, ...)."""
