"""Errors the tool reports to the user: one line of what is wrong, one of what to do."""

from __future__ import annotations


class KtdiffError(Exception):
    """A failure the user can act on. The CLI prints it without a traceback, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail  # e.g. the worker's traceback, shown with --debug only

    def to_dict(self) -> dict:
        return {"message": self.message, "hint": self.hint, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict) -> "KtdiffError":
        return cls(data["message"], data.get("hint"), data.get("detail"))
