"""Errors that reach users, each naming the input to fix."""

from __future__ import annotations


class GeoEmbedError(Exception):
    """A failure with a message written for the user."""


class InputError(GeoEmbedError):
    """An invalid input; ``parameter`` names it (CLI option / QGIS parameter)."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.reason = message


class Cancelled(GeoEmbedError):
    """The run was stopped on request; partial outputs have been removed."""
