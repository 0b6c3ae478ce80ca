"""Data-movement and shape-arithmetic kernels (dtype-agnostic).

Activations carry a runtime batch ``N`` where the file says 1. Keras' shape subgraphs
(SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE) then compute with the real ``N``; where the
file holds a constant shape baked for batch 1, the kernels scale the leading dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ModelFormatError, UnsupportedOpError
from .base import Array, Eval, Node, register
from .elementwise import requantizer


def _scaled_static(out_shape: tuple[int, ...], in_static: tuple[int, ...], x: Array) -> list[int]:
    """The file's output shape with its leading dimension scaled by the runtime batch factor."""
    static_size = int(np.prod(in_static)) if in_static else 1
    factor = x.size // static_size if static_size else 1
    shape = list(out_shape)
    if shape:
        shape[0] *= factor
    return shape


@register("RESHAPE")
def reshape(node: Node) -> Eval:
    shape_t = node.inputs[1] if len(node.inputs) > 1 else None
    out_static = node.outputs[0].shape
    in_static = node.input(0).shape
    dynamic = shape_t is not None and shape_t.data is None
    const_shape: list[int] | None = None
    if shape_t is not None and shape_t.data is not None:
        const_shape = [int(v) for v in shape_t.data.ravel()]
    elif shape_t is None and node.opt("new_shape"):
        const_shape = [int(v) for v in node.opt("new_shape")]

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x = ins[0]
        assert x is not None
        if dynamic:
            s = ins[1]
            assert s is not None
            return [x.reshape([int(v) for v in s.ravel()])]
        if const_shape is not None and -1 in const_shape and const_shape[0] != 1:
            return [x.reshape(const_shape)]
        return [x.reshape(_scaled_static(out_static, in_static, x))]

    return run


@register("EXPAND_DIMS")
def expand_dims(node: Node) -> Eval:
    def run(ins: Sequence[Array | None]) -> list[Array]:
        x, axis = ins[0], ins[1]
        assert x is not None and axis is not None
        return [np.expand_dims(x, int(axis.ravel()[0]))]

    return run


@register("SQUEEZE")
def squeeze(node: Node) -> Eval:
    in_static = node.input(0).shape
    dims = [int(d) for d in (node.opt("squeeze_dims") or [])]
    axes = tuple(sorted({d % len(in_static) for d in dims})) if dims else None
    if axes is None:
        axes = tuple(i for i, d in enumerate(in_static) if d == 1)

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x = ins[0]
        assert x is not None
        return [np.squeeze(x, axis=tuple(a for a in axes if x.shape[a] == 1))]

    return run


@register("SHAPE")
def shape(node: Node) -> Eval:
    dtype = np.dtype(node.outputs[0].dtype)

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x = ins[0]
        assert x is not None
        return [np.array(x.shape, dtype=dtype)]

    return run


@register("STRIDED_SLICE")
def strided_slice(node: Node) -> Eval:
    for name in ("ellipsis_mask", "new_axis_mask"):
        if int(node.opt(name, 0) or 0):
            raise UnsupportedOpError([f"STRIDED_SLICE({name})"])
    if node.opt("offset", False):
        raise UnsupportedOpError(["STRIDED_SLICE(offset)"])
    begin_mask = int(node.opt("begin_mask", 0) or 0)
    end_mask = int(node.opt("end_mask", 0) or 0)
    shrink = int(node.opt("shrink_axis_mask", 0) or 0)
    in_static = node.input(0).shape
    constant = all(t is not None and t.data is not None for t in node.inputs[1:4])
    indices: dict[tuple[int, ...], tuple[slice | int, ...]] = {}

    def index_for(x: Array, b: Array, e: Array, s: Array) -> tuple[slice | int, ...]:
        index: list[slice | int] = []
        for i in range(x.ndim):
            if i >= b.size:
                index.append(slice(None))
                continue
            bi, ei, si = int(b[i]), int(e[i]), int(s[i])
            if si == 0:
                raise ModelFormatError("STRIDED_SLICE: zero stride")
            if shrink >> i & 1:
                index.append(bi)
                continue
            start = None if begin_mask >> i & 1 else bi
            stop = None if end_mask >> i & 1 else ei
            batch_dim = i == 0 and in_static and in_static[0] == 1 and x.shape[0] != 1
            if batch_dim and (start in (None, 0)) and stop == 1 and si == 1:
                stop = None  # the file's batch 1 stands for the whole runtime batch
            index.append(slice(start, stop, si))
        return tuple(index)

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x, b, e, s = ins[0], ins[1], ins[2], ins[3]
        assert x is not None and b is not None and e is not None and s is not None
        if not constant:
            return [np.array(x[index_for(x, b, e, s)])]
        index = indices.get(x.shape)
        if index is None:  # constant operands: the index depends on the shape only
            index = indices[x.shape] = index_for(x, b, e, s)
        return [np.array(x[index])]

    return run


@register("PACK")
def pack(node: Node) -> Eval:
    axis = int(node.opt("axis", 0) or 0)

    def run(ins: Sequence[Array | None]) -> list[Array]:
        return [np.stack([v for v in ins if v is not None], axis=axis)]

    return run


@register("GATHER")
def gather(node: Node) -> Eval:
    axis = int(node.opt("axis", 0) or 0)
    if int(node.opt("batch_dims", 0) or 0):
        raise UnsupportedOpError(["GATHER(batch_dims)"])
    idx_t = node.input(1)
    if idx_t.data is not None:
        dim = node.input(0).shape[axis]
        if dim > 0 and (np.any(idx_t.data < 0) or np.any(idx_t.data >= dim)):
            raise ModelFormatError("GATHER: index out of range")
        if dim > 0:  # checked against the static shape; only the batch axis can change
            const_idx = idx_t.data.astype(np.intp)

            def run_const(ins: Sequence[Array | None]) -> list[Array]:
                x = ins[0]
                assert x is not None
                if axis == 0 and x.shape[0] != dim and np.any(const_idx >= x.shape[0]):
                    raise ModelFormatError("GATHER: index out of range")
                return [np.take(x, const_idx, axis=axis)]

            return run_const

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x, idx = ins[0], ins[1]
        assert x is not None and idx is not None
        if np.any(idx < 0) or np.any(idx >= x.shape[axis]):
            raise ModelFormatError("GATHER: index out of range")
        return [np.take(x, idx.astype(np.int64), axis=axis)]

    return run


@register("TRANSPOSE")
def transpose(node: Node) -> Eval:
    perm_t = node.inputs[1] if len(node.inputs) > 1 else None
    if perm_t is not None and perm_t.data is not None:
        perm = tuple(int(p) for p in perm_t.data.ravel())

        def run_const(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            return [np.ascontiguousarray(x.transpose(perm))]

        return run_const

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x, perm = ins[0], ins[1]
        assert x is not None and perm is not None
        return [np.ascontiguousarray(np.transpose(x, [int(p) for p in perm.ravel()]))]

    return run


@register("REDUCE_PROD")
def reduce_prod(node: Node) -> Eval:
    if node.input(0).dtype not in ("int32", "int64", "float32"):
        raise UnsupportedOpError([f"REDUCE_PROD({node.input(0).dtype})"])
    keep = bool(node.opt("keep_dims", False))

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x, axes = ins[0], ins[1]
        assert x is not None and axes is not None
        ax = tuple(sorted({int(a) % x.ndim for a in axes.ravel()})) if x.ndim else ()
        return [np.prod(x, axis=ax, keepdims=keep).astype(x.dtype)]

    return run


@register("CONCATENATION")
def concatenation(node: Node) -> Eval:
    axis = int(node.opt("axis", 0) or 0)
    out = node.outputs[0]
    fixes = [
        requantizer(t, out) if t is not None and t.quantization is not None else None
        for t in node.inputs
    ]
    if str(node.opt("fused_activation_function", "NONE")) != "NONE":
        raise UnsupportedOpError(["CONCATENATION(fused activation)"])
    rank = len(out.shape)
    if rank and all(fix is None for fix in fixes):
        ax0 = axis % rank  # the rank is static; only the batch dimension changes

        def run_plain(ins: Sequence[Array | None]) -> list[Array]:
            return [np.concatenate(ins, axis=ax0)]  # type: ignore[arg-type]

        return run_plain

    def run(ins: Sequence[Array | None]) -> list[Array]:
        parts = []
        for v, fix in zip(ins, fixes, strict=True):
            assert v is not None
            parts.append(fix(v) if fix is not None else v)
        ax = axis % parts[0].ndim
        return [np.concatenate(parts, axis=ax)]

    return run
