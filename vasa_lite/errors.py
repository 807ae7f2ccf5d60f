"""Errors meant for people: the CLI prints their message as one line and exits with status 2."""


class VasaError(Exception):
    """Base class of every error the course raises on purpose. The message says what was wrong and what to do."""


class InputError(VasaError, ValueError):
    """A user-supplied input (file, text, number, option) that cannot be used."""


class CheckpointError(VasaError):
    """A checkpoint that is missing, corrupt, or made for another component or preset."""
