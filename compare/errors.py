"""The errors a command reports as one line on stderr, and the exit status each one means.

- :class:`UserError` (exit 2): bad input or environment: a flag, a data file, a checkpoint, a
  folder; the message names it.
- :class:`CheckError` (exit 1): the command ran and a check failed: a divergence, twins that
  drifted apart, a bench worker that died.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or environment; the message names the flag, file or checkpoint."""

    exit_status = 2


class ArgumentError(UserError, ValueError):
    """A bad argument to a ``compare.*`` function; the message names the argument."""


def check_whole_number(name: str, value: object, minimum: int) -> None:
    """Refuse anything but an int >= ``minimum`` (a bool, a float, a string...)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArgumentError(f"{name} must be a whole number >= {minimum}, got {value!r}")


class CheckError(Exception):
    """A failed check or a divergence; the message says what and where."""

    exit_status = 1


class InterruptionError(Exception):
    """Ctrl-C stopped the command; the message says what was saved and how to go on."""

    exit_status = 130
