"""Shapes across layouts: Keras is channels-last (N, *spatial, C), torch channels-first (N, C, *spatial)."""

from __future__ import annotations

Shape = list  # list[int | None]


def to_channels_first(shape: Shape) -> Shape:
    """(N, *spatial, C) -> (N, C, *spatial); shapes of rank < 3 are unchanged."""
    if len(shape) < 3:
        return list(shape)
    return [shape[0], shape[-1], *shape[1:-1]]


def compare_shapes(keras_shapes: list[Shape], torch_shapes: list[Shape]) -> str:
    """'equal', 'layout' (equal once NHWC is read as NCHW), 'different' or 'unknown'.

    The batch dimension is ignored: Keras shows None, torch the batch of the forward pass.
    Singleton dimensions are too: GlobalAveragePooling2D's (N, C) holds the same values as
    AdaptiveAvgPool2d(1)'s (N, C, 1, 1).
    """
    if not keras_shapes or not torch_shapes:
        return "unknown"
    result = "equal"
    for k, t in zip(keras_shapes, torch_shapes):
        k_rest, t_rest = list(k[1:]), list(t[1:])
        if k_rest == t_rest:
            continue
        if len(k) != len(t):
            if None not in k_rest and [d for d in k_rest if d != 1] == [d for d in t_rest if d != 1]:
                continue
            return "different"
        if list(to_channels_first(k)[1:]) == t_rest:
            result = "layout"
            continue
        if None in k_rest and all(a is None or a == b for a, b in zip(k_rest, t_rest)):
            continue  # (None, None, 8) and (1, 16, 8): the unknown steps of a sequence
        if any(d is None for d in k_rest):
            known = [(a, b) for a, b in zip(to_channels_first(k)[1:], t_rest) if a is not None]
            if all(a == b for a, b in known):
                result = "layout" if len(k) >= 3 else result
                continue
        return "different"
    return result


def format_shape(shape: Shape, batch: str | None = None) -> str:
    dims = ["None" if d is None else str(d) for d in shape]
    if batch is not None and dims:
        dims[0] = batch
    return "(" + ", ".join(dims) + ")"
