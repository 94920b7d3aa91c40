"""An API error carries Nomad's status code and its plain-text body."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
