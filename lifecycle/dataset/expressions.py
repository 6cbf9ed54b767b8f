"""Arithmetic over columns, for derived features (`Total_SF: Total_Bsmt_SF + First_Flr_SF`).

An expression is parsed once into a small tree of numpy operations. `DataFrame.eval` parses on
every call, which on a one-row request cost more than the rest of the model. Only column names,
numbers, `+ - * / **` and parentheses are allowed, so a config cannot run code.
"""

from __future__ import annotations

import ast
import functools
import operator
from collections.abc import Callable

import numpy as np

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}

Columns = Callable[[str], np.ndarray]


class ExpressionError(ValueError):
    """An expression that is not plain arithmetic over column names."""


def _compile(node: ast.AST, expression: str) -> Callable[[Columns], np.ndarray | float]:
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op, left, right = _BINARY[type(node.op)], _compile(node.left, expression), _compile(node.right, expression)
        return lambda column: op(left(column), right(column))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        op, operand = _UNARY[type(node.op)], _compile(node.operand, expression)
        return lambda column: op(operand(column))
    if isinstance(node, ast.Name):
        name = node.id
        return lambda column: column(name)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = float(node.value)
        return lambda column: value
    raise ExpressionError(
        f"{expression!r}: only column names, numbers, + - * / ** and parentheses are allowed, not {ast.unparse(node)!r}"
    )


@functools.lru_cache(maxsize=256)
def parse_expression(expression: str) -> Callable[[Columns], np.ndarray | float]:
    """The expression as a function of a column getter; raises ExpressionError naming what is not allowed."""
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ExpressionError(f"{expression!r} is not an arithmetic expression: {exc.msg}") from None
    return _compile(tree, expression)


def column_names(expression: str) -> set[str]:
    """The columns an expression reads (after checking it parses)."""
    parse_expression(expression)
    return {node.id for node in ast.walk(ast.parse(expression.strip(), mode="eval")) if isinstance(node, ast.Name)}


def evaluate(expression: str, frame) -> np.ndarray:
    """The expression over a DataFrame's columns, as float64 (NaN where an input is missing)."""

    def column(name: str) -> np.ndarray:
        if name not in frame:
            raise ExpressionError(f"{expression!r} reads column {name!r}, which the data does not have")
        return frame[name].to_numpy(dtype="float64", na_value=np.nan)

    result = parse_expression(expression)(column)
    return np.broadcast_to(np.asarray(result, dtype="float64"), (len(frame),)).copy()
