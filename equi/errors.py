"""Errors that mean "the user asked for something that cannot run"; run.py prints them as one line."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

ASSETS_HINT = "see `python run.py assets`"


class UserError(Exception):
    """Bad input that the user can fix; shown without a stack trace."""

    def __init__(self, message: str = ""):
        super().__init__(raised_in_worker(message) or message)


def raised_in_worker(message: str) -> str | None:
    """The original message of an error that torch's DataLoader re-raised from a worker process
    (it builds the same type from "Caught … in DataLoader worker …" and the worker's traceback)."""
    if not message.startswith("Caught ") or "Original Traceback" not in message:
        return None
    last = message.rstrip().splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last else last


class ConfigError(UserError):
    """A config value, key or combination that does not exist."""


class DataError(UserError):
    """A data file that is there but cannot be used as it is; the message names the file (and the
    line, for text files) and what is wrong with it. (A damaged cache is made again, not an error.)"""


class MissingAssetError(UserError):
    """Data or pretrained weights that are not on this machine; the asset report says how to get them."""

    def __init__(self, message: str):
        super().__init__(message if message.endswith(ASSETS_HINT) else f"{message}; {ASSETS_HINT}")


@contextmanager
def blame_user(what: str, error: type[UserError] = UserError) -> Iterator[None]:
    """Around code whose ValueErrors can only be about `what` (a file or setting the user gave):
    re-raise them as `error`, so the runner path shows one line instead of a traceback."""
    try:
        yield
    except ValueError as err:
        raise error(f"{what}: {err}") from err


def one_line(err: BaseException) -> str:
    """The first line of an error's message (with its cause's, when it has one), for one-line reports."""
    text = str(err).strip() or type(err).__name__
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        text = f"{text.splitlines()[0]}: {str(cause).strip()}"
    return text.splitlines()[0]
