"""A numpy interpreter for validated TFLite graphs, batched over windows.

The file's batch dimension (1) is replaced by the caller's ``N``: one call runs all
windows through each operator in a single vectorised pass (split into chunks that bound
memory), which is what makes replaying hours of history on a hub CPU affordable.
Every operator is prepared when the interpreter is built, so an unsupported operator or
operator variant is reported at load time, all of them at once.

Single windows (the live path) are dominated by per-operator overhead, not arithmetic.
So the first call with a given batch size records every tensor that depends on shapes
only (Keras' SHAPE -> GATHER/STRIDED_SLICE -> PACK -> RESHAPE chains, ops on constants)
and every reshape's output shape; later calls with that batch size run a plan with those
operators folded into constants and reshapes turned into views.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import EngineError, ModelFormatError, UnsupportedOpError
from .graph import Graph, Tensor
from .kernels import REGISTRY, Eval, Node

Array = npt.NDArray[Any]

# Activation elements one chunk may hold per tensor, times an im2col expansion allowance.
_CHUNK_ELEMENTS = 1 << 22
# Batch sizes whose folded plans are kept (live ticks use 1, warm starts a chunk size).
_PLANS_KEPT = 4
# Operators that only reinterpret the shape of a C-contiguous buffer.
_VIEW_OPS = frozenset({"RESHAPE", "EXPAND_DIMS", "SQUEEZE"})
# Below this many activation elements per chunk, freeing dead tensors costs more than it saves.
_FREE_ABOVE = 1 << 16


@dataclass(frozen=True, slots=True)
class _Step:
    """One operator of a plan: kernel, tensor slots read and written, slots freed after."""

    index: int
    opcode: str
    run: Eval
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    frees: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Steps plus the slot table's initial contents (constants, folded tensors, ``None``)."""

    steps: tuple[_Step, ...]
    slots: tuple[Array | None, ...]
    program: Callable[[list[Array]], list[Array]] | None = None


_ERRORS = (ValueError, IndexError, FloatingPointError, ZeroDivisionError)


def _failure(step: _Step, err: Exception) -> ModelFormatError:
    return ModelFormatError(f"operator {step.index} ({step.opcode}) failed: {err}")


def _compile(
    steps: tuple[_Step, ...],
    slots: tuple[Array | None, ...],
    inputs: tuple[int, ...],
    outputs: tuple[int, ...],
) -> Callable[[list[Array]], list[Array]]:
    """The plan as straight-line Python: one line per operator, tensors as local variables.

    A generic loop spends about a microsecond per operator indexing a slot table and
    unpacking results; a single window of a small model runs a few microseconds per
    operator, so that loop was a fifth of the latency. The generated function is the same
    plan with those lookups resolved once (``del`` frees what the plan frees).
    """
    names: dict[str, Any] = {"_steps": steps, "_failure": _failure, "_ERRORS": _ERRORS}

    def ref(i: int) -> str:
        if i < 0:
            return "None"
        if slots[i] is not None:
            names[f"c{i}"] = slots[i]
            return f"c{i}"
        return f"t{i}"

    lines = ["def program(inputs):", "    k = -1", "    try:"]
    lines += [f"        t{i} = inputs[{n}]" for n, i in enumerate(inputs)]
    for k, step in enumerate(steps):
        names[f"run{k}"] = step.run
        call = f"run{k}([{', '.join(ref(i) for i in step.inputs)}])"
        lines.append(f"        k = {k}")
        if len(step.outputs) == 1:
            lines.append(f"        t{step.outputs[0]} = {call}[0]")
        else:
            lines.append(f"        out = {call}")
            lines += [f"        t{i} = out[{n}]" for n, i in enumerate(step.outputs)]
        if step.frees:
            lines.append(f"        del {', '.join(f't{i}' for i in step.frees)}")
    lines.append(f"        return [{', '.join(ref(i) for i in outputs)}]")
    lines.append("    except _ERRORS as err:")
    lines.append("        raise _failure(_steps[k], err) from err")
    # The source holds nothing but integers and the names bound in ``names``.
    exec("\n".join(lines), names)
    program: Callable[[list[Array]], list[Array]] = names["program"]
    return program


def _view(shape: tuple[int, ...]) -> Eval:
    def run(ins: Sequence[Array | None]) -> list[Array]:
        x = ins[0]
        assert x is not None
        return [x.reshape(shape)]

    return run


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
        self._static = self._static_tensors()
        self._generic = self._make_plan(folded={}, views={})
        self._plans: OrderedDict[int, _Plan] = OrderedDict()
        biggest = max((int(np.prod(t.shape)) for t in tensors if t.data is None), default=1)
        self._biggest = biggest
        self.chunk_size = chunk_size or max(1, _CHUNK_ELEMENTS // max(biggest * 8, 1))
        self.profile: dict[str, float] = {}
        self._input_specs = [(t, np.dtype(t.dtype), tuple(t.shape[1:])) for t in self.input_tensors]

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
        if n <= self.chunk_size:  # the live case: no slicing
            return self._run_chunk(arrays, profile)
        parts: list[list[Array]] = []
        for start in range(0, n, self.chunk_size):
            chunk = [a[start : start + self.chunk_size] for a in arrays]
            parts.append(self._run_chunk(chunk, profile))
        return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]

    # -- internals -------------------------------------------------------------------

    def _check_inputs(self, inputs: Sequence[npt.ArrayLike]) -> list[Array]:
        specs = self._input_specs
        if len(inputs) != len(specs):
            raise EngineError(f"model takes {len(specs)} input(s), got {len(inputs)}")
        arrays: list[Array] = []
        for (spec, dtype, tail), raw in zip(specs, inputs, strict=True):
            a = np.asarray(raw)
            if a.dtype != dtype:
                raise EngineError(f"input {spec.name!r} must be {spec.dtype}, got {a.dtype}")
            if a.shape[1:] != tail or a.ndim != len(spec.shape):
                want = ("N", *spec.shape[1:])
                raise EngineError(f"input {spec.name!r} must have shape {want}, got {a.shape}")
            arrays.append(a)
        if len(arrays) > 1 and len({a.shape[0] for a in arrays}) > 1:
            raise EngineError("all inputs must have the same batch size")
        return arrays

    def _run_chunk(self, inputs: list[Array], profile: bool) -> list[Array]:
        n = inputs[0].shape[0]
        plan = self._plans.get(n)
        if plan is None:
            return self._trace(inputs, profile)
        self._plans.move_to_end(n)
        if not profile and plan.program is not None:
            return plan.program(inputs)
        slots = list(plan.slots)
        for i, a in zip(self.graph.inputs, inputs, strict=True):
            slots[i] = a
        self._execute_profiled(plan.steps, slots)
        return [slots[i] for i in self.graph.outputs]  # type: ignore[misc]

    @staticmethod
    def _execute(steps: tuple[_Step, ...], slots: list[Array | None]) -> None:
        step: _Step | None = None
        try:
            for step in steps:
                outs = step.run([slots[i] for i in step.inputs])
                for i, v in zip(step.outputs, outs, strict=False):
                    slots[i] = v
                for i in step.frees:
                    slots[i] = None
        except _ERRORS as err:
            assert step is not None
            raise _failure(step, err) from err

    def _execute_profiled(self, steps: tuple[_Step, ...], slots: list[Array | None]) -> None:
        for step in steps:
            t0 = time.perf_counter()
            self._execute((step,), slots)
            self.profile[step.opcode] = (
                self.profile.get(step.opcode, 0.0) + time.perf_counter() - t0
            )

    def _trace(self, inputs: list[Array], profile: bool) -> list[Array]:
        """Run the generic plan and keep a plan folded for this batch size."""
        slots = list(self._generic.slots)
        for i, a in zip(self.graph.inputs, inputs, strict=True):
            slots[i] = a
        folded: dict[int, Array] = {}
        views: dict[int, tuple[int, ...]] = {}
        for step in self._generic.steps:
            if profile:
                self._execute_profiled((step,), slots)
            else:
                self._execute((step,), slots)
            if step.opcode in _VIEW_OPS and all(self._fixed(i) for i in step.inputs[1:]):
                out = slots[step.outputs[0]]
                assert out is not None
                views[step.index] = out.shape
            for i in step.outputs:
                if i in self._static:
                    value = slots[i]
                    assert value is not None
                    folded[i] = value
        outputs = [slots[i] for i in self.graph.outputs]
        n = inputs[0].shape[0]
        self._plans[n] = self._make_plan(
            folded=folded, views=views, free=n * self._biggest > _FREE_ABOVE, compiled=True
        )
        while len(self._plans) > _PLANS_KEPT:
            self._plans.popitem(last=False)
        return outputs  # type: ignore[return-value]

    def _fixed(self, i: int) -> bool:
        """Whether tensor ``i``'s value is the same for every batch of one size."""
        return i < 0 or self.graph.tensors[i].data is not None or i in self._static

    def plan_opcodes(self, batch: int) -> list[str] | None:
        """Operators a batch of this size runs once its plan is folded (None: not yet run)."""
        plan = self._plans.get(batch)
        return None if plan is None else [step.opcode for step in plan.steps]

    def _static_tensors(self) -> frozenset[int]:
        """Activations that depend on the input's shape only, never on its values."""
        tensors = self.graph.tensors
        static: set[int] = set()
        for opcode, _run, in_idx, out_idx in self._evals:
            reads = [i for i in in_idx if i >= 0 and tensors[i].data is None]
            if opcode == "SHAPE" or all(i in static for i in reads):
                static.update(out_idx)
        return frozenset(static - set(self.graph.outputs))

    def _make_plan(
        self,
        *,
        folded: dict[int, Array],
        views: dict[int, tuple[int, ...]],
        free: bool = True,
        compiled: bool = False,
    ) -> _Plan:
        """Steps with folded tensors as constants; dead activations freed when ``free``.

        Freeing each activation after its last reader bounds peak memory to the live
        set, which matters for 10,000-window batches.
        """
        tensors = self.graph.tensors
        # Slot -1 (an absent optional input) reads the extra ``None`` at the end.
        slots: list[Array | None] = [t.data for t in tensors] + [None]
        for i, value in folded.items():
            slots[i] = value
        kept = [
            (k, ev)
            for k, ev in enumerate(self._evals)
            if not (folded and all(i in folded for i in ev[3]))
        ]
        last: dict[int, int] = {}
        for k, (_opcode, _run, in_idx, _out) in kept:
            for i in in_idx:
                if i >= 0 and slots[i] is None:
                    last[i] = k
        keep = set(self.graph.outputs) | set(self.graph.inputs)
        steps = []
        for k, (opcode, run, in_idx, out_idx) in kept:
            frees = (
                tuple(sorted({i for i in in_idx if last.get(i) == k and i not in keep}))
                if free
                else ()
            )
            if k in views:  # a reshape of a known shape: a view
                steps.append(_Step(k, opcode, _view(views[k]), in_idx[:1], out_idx, frees))
            else:
                steps.append(_Step(k, opcode, run, in_idx, out_idx, frees))
        plan_steps, plan_slots = tuple(steps), tuple(slots)
        program = None
        if compiled:
            program = _compile(plan_steps, plan_slots, self.graph.inputs, self.graph.outputs)
        return _Plan(plan_steps, plan_slots, program)

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
