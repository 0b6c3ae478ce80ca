"""A numpy interpreter for validated TFLite graphs, batched over windows.

The file's batch dimension (1) is replaced by the caller's ``N``: one call runs all
windows through each operator in a single vectorised pass (split into chunks that bound
memory), which is what makes replaying hours of history on a hub CPU affordable.
Every operator is prepared when the interpreter is built, so an unsupported operator or
operator variant is reported at load time, all of them at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import EngineError, ModelFormatError, UnsupportedOpError
from .graph import Graph, Tensor
from .kernels import REGISTRY, Eval, Node

Array = npt.NDArray[Any]

# opcode, kernel, (constant or None, activation slot or -1) per input, outputs, frees.
_Step = tuple[str, Eval, tuple[tuple[Array | None, int], ...], tuple[int, ...], tuple[int, ...]]

# Activation elements one chunk may hold per tensor, times an im2col expansion allowance.
_CHUNK_ELEMENTS = 1 << 22


class NumpyInterpreter:
    """Runs a :class:`Graph` with the numpy kernels.

    ``run`` takes one array per model input in the model's own dtype, shaped
    ``(N, *input_shape[1:])``, and returns the outputs in their raw dtype, shaped
    ``(N, *output_shape[1:])``.
    """

    def __init__(self, graph: Graph, *, chunk_size: int | None = None) -> None:
        missing = [op.opcode for op in graph.operators if op.opcode not in REGISTRY]
        if missing:
            raise UnsupportedOpError(missing)
        self.graph = graph
        tensors = graph.tensors
        self._evals: list[tuple[str, Eval, tuple[int, ...], tuple[int, ...]]] = []
        unsupported: list[str] = []
        for step, op in enumerate(graph.operators):
            node = Node(
                op=op,
                inputs=tuple(tensors[i] if i >= 0 else None for i in op.inputs),
                outputs=tuple(tensors[i] for i in op.outputs),
            )
            try:
                run = REGISTRY[op.opcode](node)
            except UnsupportedOpError as err:
                unsupported.extend(err.op_names)
                continue
            except (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError) as err:
                # Shapes or options the reader accepted but this kernel cannot use.
                raise ModelFormatError(f"operator {step} ({op.opcode}): {err}") from err
            self._evals.append((op.opcode, run, op.inputs, op.outputs))
        if unsupported:
            raise UnsupportedOpError(unsupported)
        self._check_dataflow()
        self._plan = self._make_plan()
        biggest = max((int(np.prod(t.shape)) for t in tensors if t.data is None), default=1)
        self.chunk_size = chunk_size or max(1, _CHUNK_ELEMENTS // max(biggest * 8, 1))
        self.profile: dict[str, float] = {}

    # -- public API ------------------------------------------------------------------

    @property
    def input_tensors(self) -> tuple[Tensor, ...]:
        return tuple(self.graph.tensors[i] for i in self.graph.inputs)

    @property
    def output_tensors(self) -> tuple[Tensor, ...]:
        return tuple(self.graph.tensors[i] for i in self.graph.outputs)

    def run(self, inputs: Sequence[npt.ArrayLike], *, profile: bool = False) -> list[Array]:
        """Outputs for a batch of ``N`` windows (all inputs share the leading ``N``).

        With ``profile=True`` the seconds spent per opcode are added to ``self.profile``.
        """
        arrays = self._check_inputs(inputs)
        n = arrays[0].shape[0]
        if n == 0:
            return [np.zeros((0, *t.shape[1:]), dtype=t.dtype) for t in self.output_tensors]
        parts: list[list[Array]] = []
        for start in range(0, n, self.chunk_size):
            chunk = [a[start : start + self.chunk_size] for a in arrays]
            parts.append(self._run_chunk(chunk, profile))
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]

    # -- internals -------------------------------------------------------------------

    def _check_inputs(self, inputs: Sequence[npt.ArrayLike]) -> list[Array]:
        specs = self.input_tensors
        if len(inputs) != len(specs):
            raise EngineError(f"model takes {len(specs)} input(s), got {len(inputs)}")
        arrays: list[Array] = []
        for spec, raw in zip(specs, inputs, strict=True):
            a = np.asarray(raw)
            if a.dtype != np.dtype(spec.dtype):
                raise EngineError(f"input {spec.name!r} must be {spec.dtype}, got {a.dtype}")
            if a.ndim != len(spec.shape) or a.shape[1:] != tuple(spec.shape[1:]):
                want = ("N", *spec.shape[1:])
                raise EngineError(f"input {spec.name!r} must have shape {want}, got {a.shape}")
            arrays.append(a)
        if len({a.shape[0] for a in arrays}) > 1:
            raise EngineError("all inputs must have the same batch size")
        return arrays

    def _run_chunk(self, inputs: list[Array], profile: bool) -> list[Array]:
        values: dict[int, Array] = dict(zip(self.graph.inputs, inputs, strict=True))
        for step, (opcode, run, args_spec, out_idx, frees) in enumerate(self._plan):
            args = [const if i < 0 else values[i] for const, i in args_spec]
            t0 = time.perf_counter() if profile else 0.0
            try:
                outs = run(args)
            except (ValueError, IndexError, FloatingPointError, ZeroDivisionError) as err:
                raise ModelFormatError(f"operator {step} ({opcode}) failed: {err}") from err
            if profile:
                self.profile[opcode] = self.profile.get(opcode, 0.0) + time.perf_counter() - t0
            for i, v in zip(out_idx, outs, strict=False):
                values[i] = v
            for i in frees:
                del values[i]
        return [values[i] for i in self.graph.outputs]

    def _make_plan(
        self,
    ) -> list[
        tuple[str, Eval, tuple[tuple[Array | None, int], ...], tuple[int, ...], tuple[int, ...]]
    ]:
        """Per step: constant-or-slot arguments and the activations to free afterwards.

        Freeing each activation after its last reader bounds peak memory to the live
        set, which matters for 10,000-window batches.
        """
        tensors = self.graph.tensors
        last: dict[int, int] = {}
        for step, (_opcode, _run, in_idx, _out) in enumerate(self._evals):
            for i in in_idx:
                if i >= 0 and tensors[i].data is None:
                    last[i] = step
        keep = set(self.graph.outputs)
        plan: list[_Step] = []
        for step, (opcode, run, in_idx, out_idx) in enumerate(self._evals):
            spec = tuple(
                (None, -1)
                if i < 0
                else (d, -1)
                if (d := tensors[i].data) is not None
                else (None, i)
                for i in in_idx
            )
            frees = tuple(sorted({i for i in in_idx if last.get(i) == step and i not in keep}))
            plan.append((opcode, run, spec, out_idx, frees))
        return plan

    def _check_dataflow(self) -> None:
        """Every activation an operator reads must be a model input or written before."""
        ready = set(self.graph.inputs)
        for step, (opcode, _run, in_idx, out_idx) in enumerate(self._evals):
            for i in in_idx:
                if i >= 0 and i not in ready and self.graph.tensors[i].data is None:
                    raise ModelFormatError(
                        f"operator {step} ({opcode}) reads tensor {i} before it is written"
                    )
            ready.update(out_idx)
        for i in self.graph.outputs:
            if i not in ready and self.graph.tensors[i].data is None:
                raise ModelFormatError(f"model output tensor {i} is never written")
