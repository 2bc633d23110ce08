"""Errors the library raises on purpose; each message is one sentence a user can act on."""


class InputError(ValueError):
    """The input scan or an argument cannot be processed (bad file, not CT, no hip, ...)."""


class Cancelled(RuntimeError):
    """The user cancelled a long-running operation."""
