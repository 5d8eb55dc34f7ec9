"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""


class ServingbenchError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class ServerStartError(ServingbenchError):
    """A server process exited or never became ready; carries its last log lines."""

    def __init__(self, message: str, log_tail: str = ""):
        super().__init__(message)
        self.log_tail = log_tail


class UnsupportedModel(ServingbenchError):
    """This framework can't serve this model (e.g. an export that can't exist); the cell is 'unsupported'."""


def describe(exc: BaseException) -> str:
    """An exception in one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
