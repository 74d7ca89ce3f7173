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


# One example is all a summary needs: an input above this many elements is a mistake (a typo in
# --input-shape, or a Keras input declared far too large), refused before any tensor is allocated.
MAX_INPUT_ELEMENTS = 2 ** 28  # 268,435,456 elements: 1 GiB as float32


def check_input_size(shape, what: str) -> None:
    """Refuse an input whose element count is above MAX_INPUT_ELEMENTS (or a dimension torch cannot index)."""
    count = 1
    for dim in shape:
        count *= int(dim)
    if count > MAX_INPUT_ELEMENTS or any(int(d) >= 2 ** 63 for d in shape):
        raise KtdiffError(f"{what} has {count:,} elements, above ktdiff's limit of {MAX_INPUT_ELEMENTS:,} per input",
                          "a summary needs one example: use batch 1 and the model's real input size, "
                          "e.g. --input-shape 1,3,224,224.")
