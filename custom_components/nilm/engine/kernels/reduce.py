"""Reductions over an axis: MEAN, SOFTMAX, L2_NORMALIZATION."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import UnsupportedOpError
from .base import Array, Eval, Node, const, is_quantized, register
from .nonlinear import l2norm_int, mean_int, softmax_int


def _axes(node: Node, ndim: int) -> tuple[int, ...]:
    raw = const(node.input(1)).ravel()
    return tuple(sorted({int(a) % ndim for a in raw}))


@register("MEAN")
def mean(node: Node) -> Eval:
    inp = node.input(0)
    keep = bool(node.opt("keep_dims", False))
    axes = _axes(node, len(inp.shape))
    if inp.dtype == "float32":
        static = 0 not in axes
        count = np.float32(np.prod([inp.shape[a] for a in axes])) if axes else np.float32(1)

        def run_f(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            # np.mean's own arithmetic (float32 pairwise sum / count) minus its overhead.
            n = count if static else np.float32(np.prod([x.shape[a] for a in axes]))
            total = np.add.reduce(x, axis=axes, keepdims=keep, dtype=np.float32)
            total /= n
            return [total]

        return run_f
    if is_quantized(inp):
        return mean_int(node, axes, keep)
    raise UnsupportedOpError([f"MEAN({inp.dtype})"])


@register("SOFTMAX")
def softmax(node: Node) -> Eval:
    inp = node.input(0)
    beta = float(node.opt("beta", 1.0))
    if inp.dtype == "float32":
        f_beta = np.float32(beta)

        def run_f(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            # float32 throughout, like the reference kernel.
            z = x - x.max(axis=-1, keepdims=True)
            if beta != 1.0:
                z *= f_beta
            e = np.exp(z, out=z)
            e /= np.add.reduce(e, axis=-1, keepdims=True)
            return [e]

        return run_f
    return softmax_int(node, beta)


@register("L2_NORMALIZATION")
def l2_normalization(node: Node) -> Eval:
    inp = node.input(0)
    if inp.dtype == "float32":

        def run_f(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            sq = np.add.reduce(x * x, axis=-1, keepdims=True)
            return [x / np.sqrt(np.maximum(sq, np.float32(1e-6)))]

        return run_f
    return l2norm_int(node)
