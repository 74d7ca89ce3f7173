"""Small text helpers shared by the rules' messages."""

from __future__ import annotations

from ..layout import format_shape


def num(value: int) -> str:
    return f"{value:,}"


def label(layer) -> str:
    """`name (Type)` as the user knows the layer or module."""
    if layer.origin == "function":
        return f"{layer.type} in forward()"
    if layer.origin == "container" and not layer.id:
        return f"the root module ({layer.type})"
    return f"{layer.name} ({layer.type})"


def shape(layer, which: str = "output") -> str:
    shapes = layer.output_shapes if which == "output" else layer.input_shapes
    return format_shape(shapes[0]) if shapes else "(?)"


def tup(values) -> str:
    if isinstance(values, (list, tuple)):
        return "(" + ", ".join(str(v) for v in values) + ")"
    return str(values)


def fmt_float(value) -> str:
    if value is None:
        return "None"
    return f"{value:g}"


def pads(pairs) -> str:
    """[[1, 1], [0, 1]] -> '1/1, 0/1' (before/after per spatial dimension)."""
    return ", ".join(f"{b}/{a}" for b, a in pairs)
