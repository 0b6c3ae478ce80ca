"""Re-fitting a model's two output heads to one household, in numpy ("adaptation").

Why: re-fitting only the head of a seq2point model on a household's own labels gives most
of fine-tuning's gain (D'Incecco et al. 2019; goruck/nilm), and a head is small linear
algebra, so Home Assistant can do it on the hub without TensorFlow. The shipped int8 body
stays as it is: the numpy interpreter also returns the features both heads read (the
tensor the card's ``head`` names), and an :class:`Adapter` holds float weights for a
logistic status head and a ridge power head, bound to the model file's sha256. The
shipped heads are the prior: the re-fit is pulled towards them, so a few runs move it
a little and many runs move it more.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .backends import NumpyBackend
from .card import MAX_HEAD_FEATURES, MAX_POWER_W, HeadSpec, ModelCard
from .errors import EngineError
from .graph import Graph, Operator
from .metrics import f1_score
from .model import FloatArray, NilmModel, Prediction, gated_prediction
from .reader import read_model_file, read_regular_file
from .split import time_cut
from .status import apply_min_durations, durations_to_samples, run_bounds, status_from_power
from .windows import valid_starts, window_batches

ADAPTER_SCHEMA_VERSION = 1
ADAPTER_SUFFIX = ".adapter.json"
MAX_ADAPTER_BYTES = 512 * 1024
MAX_WEIGHT = 1e6
# Two runs fit (the older re-fits, the newer chooses the pull and the threshold) and a
# newer one decides adoption; the pull towards the shipped head keeps a re-fit on so few
# runs close to it. The cut moves between runs to find them (:mod:`.split`).
MIN_RUNS_FIT = 2
MIN_RUNS_VALIDATION = 1
FIT_SHARE = 0.7  # the older 70 % fits, the newer 30 % decides adoption
# On the newer days a re-fit may not make the energy error larger, and counts as better
# only if it makes it smaller, by more than this share of the plug's energy (noise).
ENERGY_MARGIN = 0.05
INNER_SHARE = 0.75  # within the fit part: the older 75 % fits, the rest picks strength/threshold
STRENGTHS = (
    1e-3,
    1e-2,
    1e-1,
    1.0,
    10.0,
    100.0,
)  # pull towards the shipped head, per unit of mean loss
# Re-fitted heads are calibrated to the household's share of "on" (often under 1 %), so
# the useful thresholds reach far below 0.5.
THRESHOLDS = (
    0.01,
    0.02,
    0.03,
    0.05,
    0.07,
    *np.round(np.arange(0.1, 0.951, 0.05), 2),
    0.97,
    0.98,
    0.99,
)
_NEWTON_STEPS = 40

Float64Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class AdapterError(EngineError):
    """An adapter file is unusable, or a model cannot be adapted."""


@dataclass(frozen=True, slots=True)
class HeadLayout:
    """Where the heads sit in the graph: the features both read, and each head's op."""

    feature_index: int
    features: int
    power_op: Operator
    status_op: Operator


@dataclass(frozen=True, slots=True)
class Heads:
    """Float weights of both heads on the feature vector: ``sigmoid(f @ w + b)`` is the
    probability of "on", ``f @ v + c`` the power in watts (clipped at 0), and
    ``threshold`` turns the probability into the raw on/off decision."""

    status_weights: Float64Array
    status_bias: float
    power_weights: Float64Array
    power_bias: float
    threshold: float

    def predict(self, card: ModelCard, features: npt.ArrayLike) -> Prediction:
        f = np.asarray(features, dtype=np.float64)
        logits = f @ self.status_weights + self.status_bias
        probability = 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))
        power = f @ self.power_weights + self.power_bias
        return gated_prediction(card, power, probability, self.threshold)


def _producers(graph: Graph) -> dict[int, Operator]:
    return {i: op for op in graph.operators for i in op.outputs}


def _head_op(graph: Graph, output: int, through: tuple[str, ...]) -> Operator | None:
    """The FULLY_CONNECTED behind an output, seen through ``through`` (e.g. DEQUANTIZE)."""
    producers = _producers(graph)
    op = producers.get(graph.outputs[output])
    while op is not None and op.opcode in through:
        op = producers.get(op.inputs[0])
    if op is None or op.opcode != "FULLY_CONNECTED":
        return None
    if op.options.get("fused_activation_function", "NONE") != "NONE":
        return None
    return op


def locate_head(graph: Graph, card: ModelCard) -> HeadLayout | None:
    """The two-headed seq2point ending (one FULLY_CONNECTED per output, a LOGISTIC on
    the status one, both reading one feature vector), or None where the graph has none."""
    if card.status_output is None or max(card.power_output, card.status_output) >= len(
        graph.outputs
    ):
        return None
    power = _head_op(graph, card.power_output, ("DEQUANTIZE", "QUANTIZE"))
    status = _head_op(graph, card.status_output, ("DEQUANTIZE", "QUANTIZE", "LOGISTIC"))
    if power is None or status is None or power.inputs[0] != status.inputs[0]:
        return None
    feature = graph.tensors[power.inputs[0]]
    features = math.prod(feature.shape[1:])
    if feature.data is not None or not 1 <= features <= MAX_HEAD_FEATURES:
        return None
    for op in (power, status):
        weights = graph.tensors[op.inputs[1]]
        if weights.data is None or weights.data.size != features:
            return None  # more than one unit, or weights computed at run time
    return HeadLayout(power.inputs[0], features, power, status)


def head_spec(graph: Graph, card: ModelCard) -> HeadSpec | None:
    """What a card records of the model's head (the exporter writes it), or None."""
    layout = locate_head(graph, card)
    if layout is None:
        return None
    return HeadSpec(graph.tensors[layout.feature_index].name, layout.features)


def _dense_as_float(graph: Graph, op: Operator) -> tuple[Float64Array, float]:
    """A one-unit FULLY_CONNECTED's real-valued weights and bias (TFLite's affine
    quantization undone: ``real = scale * (q - zero_point)``; the int32 bias's scale is
    input scale x weight scale)."""
    weights = graph.tensors[op.inputs[1]]
    assert weights.data is not None
    w: Float64Array = weights.data.astype(np.float64).reshape(-1)
    if weights.quantization is not None:
        w = (w - float(weights.quantization.zero_point[0])) * float(weights.quantization.scale[0])
    bias = 0.0
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        tensor = graph.tensors[op.inputs[2]]
        assert tensor.data is not None
        bias = float(tensor.data.astype(np.float64).reshape(-1)[0])
        if tensor.dtype in ("int32", "int64"):
            feature = graph.tensors[op.inputs[0]]
            if feature.quantization is None or weights.quantization is None:
                raise AdapterError("an integer bias without input and weight scales")
            bias *= float(feature.quantization.scale[0]) * float(weights.quantization.scale[0])
    return w, bias


def shipped_heads(graph: Graph, layout: HeadLayout, card: ModelCard) -> Heads:
    """The model's own heads in float: the prior every re-fit starts from."""
    status_w, status_b = _dense_as_float(graph, layout.status_op)
    power_w, power_b = _dense_as_float(graph, layout.power_op)
    scale = card.power_scale_w
    return Heads(
        status_w, status_b, power_w * scale, power_b * scale, card.status.probability_threshold
    )


class AdaptableModel(NilmModel):
    """A model on the numpy engine that also yields its head's features, and predicts
    with a household's re-fitted :class:`Heads` once one is set (``heads``)."""

    backend: NumpyBackend

    def __init__(self, card: ModelCard, model_path: Path, graph: Graph | None = None) -> None:
        graph = graph if graph is not None else read_model_file(model_path)
        if card.head is None:
            raise AdapterError(f"model card {card.name} names no head: it cannot be adapted")
        layout = locate_head(graph, card)
        if layout is None:
            raise AdapterError(f"{card.name}: the model does not end in two dense heads")
        feature = graph.tensors[layout.feature_index]
        if feature.name != card.head.feature_tensor or layout.features != card.head.features:
            raise AdapterError(
                f"{card.name}: the card's head ({card.head.features} features) does not "
                f"match the model's ({layout.features} features)"
            )
        super().__init__(
            card, NumpyBackend(model_path, graph, extra_outputs=(layout.feature_index,))
        )
        self.layout = layout
        self.shipped = shipped_heads(graph, layout, card)
        self.heads: Heads | None = None

    def predict(self, mains_windows_w: npt.ArrayLike) -> Prediction:
        if self.heads is None:
            return super().predict(mains_windows_w)
        _outputs, features = self.run(mains_windows_w)
        return self.heads.predict(self.card, features)

    def run(self, mains_windows_w: npt.ArrayLike) -> tuple[Prediction, FloatArray]:
        """The shipped model's prediction and the head's features, (N, features)."""
        outputs, extras = self.backend.run_with_extras(self.normalise(mains_windows_w))
        features = extras[0].reshape(len(extras[0]), -1)
        return self.interpret(outputs), features


# --- fitting ------------------------------------------------------------------------------


def _design(features: Float64Array) -> Float64Array:
    return np.hstack([features, np.ones((len(features), 1))])


def fit_status(
    features: npt.ArrayLike, on: npt.ArrayLike, prior: Heads, strength: float
) -> tuple[Float64Array, float]:
    """Class-balanced logistic regression by Newton's method, L2-pulled towards the
    prior's weights (the bias is free): a few labelled runs cannot undo the shipped head."""
    x = _design(np.asarray(features, dtype=np.float64))
    y = np.asarray(on, dtype=np.float64)
    share = float(y.mean())
    if not 0.0 < share < 1.0:
        raise AdapterError("the labels need both on and off samples")
    weight = np.full(len(y), 1.0 / len(y))
    theta0 = np.append(prior.status_weights, prior.status_bias)
    penalty = np.full(x.shape[1], strength)
    penalty[-1] = 1e-9

    def loss(theta: Float64Array) -> float:
        z = x @ theta
        # log(1 + e^z) - y z, stable for any z
        bce = np.logaddexp(0.0, z) - y * z
        return float(weight @ bce + 0.5 * np.sum(penalty * (theta - theta0) ** 2))

    theta = theta0.copy()
    current = loss(theta)
    for _ in range(_NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -60.0, 60.0)))
        gradient = x.T @ (weight * (p - y)) + penalty * (theta - theta0)
        hessian = (x * (weight * p * (1.0 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        # Damped Newton: halve the step until the loss falls (near-separable labels
        # make a full step overshoot).
        for _halving in range(30):
            trial = theta - step
            value = loss(trial)
            if value <= current:
                break
            step = step / 2.0
        else:
            break
        theta, current = trial, value
        if float(np.max(np.abs(step))) < 1e-7:
            break
    return theta[:-1], float(theta[-1])


def fit_power(
    features: npt.ArrayLike, power_w: npt.ArrayLike, prior: Heads, strength: float, scale: float
) -> tuple[Float64Array, float]:
    """Ridge regression of the plug's watts on the features of on-samples, pulled towards
    the prior (in units of the card's power scale, so ``strength`` means the same for a
    kettle and a fridge)."""
    x = _design(np.asarray(features, dtype=np.float64))
    y = np.asarray(power_w, dtype=np.float64) / scale
    theta0 = np.append(prior.power_weights, prior.power_bias) / scale
    penalty = np.full(x.shape[1], strength)
    penalty[-1] = 1e-9
    n = len(y)
    lhs = x.T @ x / n + np.diag(penalty)
    rhs = x.T @ y / n + penalty * theta0
    theta = np.linalg.lstsq(lhs, rhs, rcond=None)[0] * scale
    return theta[:-1], float(theta[-1])


# --- the household's series -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """A household's history on the model's grid: the model's features and shipped
    prediction at every usable target sample, and the plug's truth there."""

    targets: npt.NDArray[np.int64]  # sample index of each window's target
    length: int  # samples in the series
    features: FloatArray  # (N, F)
    shipped: Prediction
    truth_on: BoolArray  # at targets
    label_w: Float64Array  # plug watts at targets (NaN: an on/off label only)


def series_for(
    model: AdaptableModel,
    mains_w: npt.ArrayLike,
    label_power_w: npt.ArrayLike | None = None,
    label_on: npt.ArrayLike | None = None,
) -> Series:
    """Windows at every target where mains and label are real, through the model in
    batches (memory: one batch of windows, plus the (N, F) features)."""
    card = model.card
    mains = np.asarray(mains_w, dtype=np.float64)
    if label_power_w is not None:
        label = np.asarray(label_power_w, dtype=np.float64)
        known = label
        truth = status_from_power(np.nan_to_num(label, nan=0.0), card.status, card.sample_period_s)
    elif label_on is not None:
        known = np.asarray(label_on, dtype=np.float64)  # NaN where the state is unknown
        label = np.full(known.shape, np.nan)
        truth = np.nan_to_num(known, nan=0.0) > 0.5
    else:
        raise AdapterError("a label is needed: the plug's power or an on/off state")
    if known.shape != mains.shape:
        raise AdapterError("mains and label must be on the same grid")
    starts = valid_starts(mains, known, card.window_length, card.target_index)
    if starts.size == 0:
        raise AdapterError("no stretch of history is as long as the model's window")
    parts = [model.run(batch) for batch in window_batches(mains, starts, card.window_length)]
    features = np.concatenate([f for _p, f in parts]).astype(np.float32)
    targets = starts + card.target_index
    shipped = _concatenate([p for p, _f in parts])
    return Series(targets, mains.size, features, shipped, truth[targets], label[targets])


def _concatenate(parts: list[Prediction]) -> Prediction:
    probabilities = [p.probability for p in parts if p.probability is not None]
    return Prediction(
        power_w=np.concatenate([p.power_w for p in parts]),
        raw_power_w=np.concatenate([p.raw_power_w for p in parts]),
        probability=np.concatenate(probabilities) if len(probabilities) == len(parts) else None,
        on=np.concatenate([p.on for p in parts]),
    )


def _status(card: ModelCard, series: Series, raw_on: BoolArray, where: BoolArray) -> BoolArray:
    """The card's on/off rule over the series grid (gaps are off), read at ``where``."""
    grid = np.zeros(series.length, dtype=bool)
    grid[series.targets[where]] = raw_on
    on = apply_min_durations(
        grid,
        durations_to_samples(card.status.min_on_s, card.sample_period_s),
        durations_to_samples(card.status.min_off_s, card.sample_period_s),
    )
    result: BoolArray = on[series.targets[where]]
    return result


def _runs(on: BoolArray) -> int:
    return int(run_bounds(on)[0].size)


@dataclass(frozen=True, slots=True)
class Score:
    f1: float
    energy_kwh: float


def _take(prediction: Prediction, where: BoolArray) -> Prediction:
    probability = prediction.probability
    return Prediction(
        power_w=prediction.power_w[where],
        raw_power_w=prediction.raw_power_w[where],
        probability=None if probability is None else probability[where],
        on=prediction.on[where],
    )


def _score(card: ModelCard, series: Series, prediction: Prediction, where: BoolArray) -> Score:
    """F1 and energy of ``prediction`` (made for the targets ``where`` selects)."""
    on = _status(card, series, prediction.on, where)
    energy = float(np.sum(np.where(on, prediction.raw_power_w, 0.0)))
    return Score(f1_score(series.truth_on[where], on), energy * card.sample_period_s / 3.6e6)


def _fit(card: ModelCard, series: Series, prior: Heads, where: BoolArray, strength: float) -> Heads:
    features = series.features[where]
    status_w, status_b = fit_status(features, series.truth_on[where], prior, strength)
    on_power = where & series.truth_on & ~np.isnan(series.label_w)
    if on_power.any():
        power_w, power_b = fit_power(
            series.features[on_power], series.label_w[on_power], prior, strength,
            card.power_scale_w,
        )  # fmt: skip
    else:  # an on/off label teaches no watts: keep the shipped power head
        power_w, power_b = prior.power_weights, prior.power_bias
    return Heads(status_w, status_b, power_w, power_b, prior.threshold)


@dataclass(frozen=True, slots=True)
class AdaptationResult:
    """What a re-fit found: adopted only when F1 on the newer part beats the shipped model."""

    adopted: bool
    reason: str
    runs_fit: int
    runs_validation: int
    f1_before: float | None = None
    f1_after: float | None = None
    energy_before_kwh: float | None = None
    energy_after_kwh: float | None = None
    energy_metered_kwh: float | None = None
    heads: Heads | None = None
    strength: float | None = None
    samples: int = 0

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (no weights) for a sensor's attributes or a report."""
        out = {
            k: getattr(self, k)
            for k in (
                "adopted", "reason", "runs_fit", "runs_validation", "f1_before", "f1_after",
                "energy_before_kwh", "energy_after_kwh", "energy_metered_kwh", "strength",
                "samples",
            )
        }  # fmt: skip
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def _cut(series: Series, n: int, share: float, min_before: int, min_after: int) -> int:
    """The position among the first ``n`` targets where the older ``share`` of their time
    ends, moved between runs when a side would hold too few (:func:`.split.time_cut`)."""
    if n == 0:
        return 0
    targets = series.targets[:n]
    at = targets[0] + share * (targets[-1] - targets[0])
    preferred = int(np.searchsorted(targets, at, side="left"))
    moved = time_cut(series.truth_on[:n], preferred, min_before=min_before, min_after=min_after)
    return preferred if moved is None else moved


def adapt(
    model: AdaptableModel, series: Series, *, fit_share: float = FIT_SHARE
) -> AdaptationResult:
    """Fit on the older ``fit_share`` of the series, choose the pull towards the shipped
    head and the threshold on the newest quarter of that, refit, and compare with the
    shipped model on the newer rest (time order: never fitted on what it is judged by;
    each cut moves between runs when a side would hold too few)."""
    card = model.card
    n = len(series.targets)
    position = np.arange(n)
    cut = _cut(series, n, fit_share, MIN_RUNS_FIT, MIN_RUNS_VALIDATION)
    fit = position < cut
    validation = ~fit
    runs_fit, runs_validation = _runs(series.truth_on[fit]), _runs(series.truth_on[validation])
    base = AdaptationResult(False, "", runs_fit, runs_validation, samples=n)
    if runs_fit < MIN_RUNS_FIT or runs_validation < MIN_RUNS_VALIDATION:
        return replace(
            base,
            reason=f"needs {MIN_RUNS_FIT} labelled runs to fit and {MIN_RUNS_VALIDATION} "
            f"to validate (has {runs_fit} and {runs_validation})",
        )
    inner = position < _cut(series, cut, INNER_SHARE, 1, 1)
    check = fit & ~inner
    best: tuple[float, float, float] | None = None  # (f1, strength, threshold)
    if _runs(series.truth_on[inner]) >= 1 and _runs(series.truth_on[check]) >= 1:
        for strength in STRENGTHS:
            heads = _fit(card, series, model.shipped, inner, strength)
            probability = heads.predict(card, series.features[check]).probability
            assert probability is not None
            for threshold in THRESHOLDS:
                on = probability >= threshold
                f1 = f1_score(series.truth_on[check], _status(card, series, on, check))
                if best is None or f1 > best[0] + 1e-12:
                    best = (f1, strength, float(threshold))
    strength, threshold = (
        (best[1], best[2]) if best else (STRENGTHS[-1], card.status.probability_threshold)
    )
    refit = replace(_fit(card, series, model.shipped, fit, strength), threshold=threshold)
    before = _score(card, series, _take(series.shipped, validation), validation)
    label = series.label_w[validation & series.truth_on]
    metered = (
        float(np.nansum(label)) * card.sample_period_s / 3.6e6
        if not np.isnan(series.label_w).all()
        else None
    )
    chosen, after, adopted, reason = _choose_heads(
        card, series, model.shipped, refit, validation, metered_kwh=metered
    )
    return replace(
        base,
        adopted=adopted,
        reason=reason,
        f1_before=before.f1,
        f1_after=after.f1,
        energy_before_kwh=before.energy_kwh,
        energy_after_kwh=after.energy_kwh,
        energy_metered_kwh=metered,
        heads=chosen,
        strength=strength,
    )


def _choose_heads(
    card: ModelCard,
    series: Series,
    shipped: Heads,
    refit: Heads,
    validation: BoolArray,
    *,
    metered_kwh: float | None,
) -> tuple[Heads, Score, bool, str]:
    """The heads to adopt, judged on the newer days against the shipped ones: each head is
    the re-fit's or the shipped one, and a mix is adopted only if no entity gets worse
    (F1 not lower; with a plug's watts, the energy error not larger by more than
    ``ENERGY_MARGIN`` of the plug's energy) and each re-fitted head earns its place: a
    re-fitted status head needs a higher F1, a re-fitted power head an energy error
    smaller by that margin (so an on/off plug, with no watts, never replaces the power
    head). Of those, the best F1 wins, then the closest energy.
    Returns the heads, their score on the newer days, whether they are adopted and why;
    when no mix qualifies, the whole re-fit (for the record) and False."""
    where = series.features[validation]

    def judge(heads: Heads) -> tuple[Score, float]:
        score = _score(card, series, heads.predict(card, where), validation)
        error = 0.0 if metered_kwh is None else abs(score.energy_kwh - metered_kwh)
        return score, error

    margin = 0.0 if metered_kwh is None else ENERGY_MARGIN * metered_kwh
    base, error_0 = judge(shipped)  # the shipped heads in float, like every mix
    # (status head, power head, reason suffix, needs F1 evidence, needs energy evidence)
    mixes = ((refit, refit, "", True, True),
             (refit, shipped, " (the shipped power head kept)", True, False),
             (shipped, refit, " (the shipped status head kept)", False, True))  # fmt: skip
    judged = []
    for status_from, power_from, kept, needs_f1, needs_energy in mixes:
        heads = replace(
            status_from, power_weights=power_from.power_weights, power_bias=power_from.power_bias
        )
        judged.append((heads, kept, needs_f1, needs_energy, *judge(heads)))
    best: tuple[Heads, Score, float, str] | None = None
    for heads, kept, needs_f1, needs_energy, score, error in judged:
        f1_better, energy_better = score.f1 > base.f1 + 1e-12, error < error_0 - margin
        if score.f1 < base.f1 - 1e-12 or error > error_0 + margin:
            continue
        # A re-fitted head is adopted only on its own entity's evidence: the status head
        # where F1 rose, the power head where the energy came nearer the plug's.
        if (needs_f1 and not f1_better) or (needs_energy and not energy_better):
            continue
        what = " and ".join(
            name for name, better in (("F1", f1_better), ("energy", energy_better)) if better
        )
        if best is None or (score.f1, -error) > (best[1].f1, -best[2]):
            best = (heads, score, error, f"{what} improved on the newer days{kept}")
    if best is None:
        whole_refit, _, _, _, refit_score, _ = judged[0]
        reason = "no re-fit improved F1 or energy on the newer days without worsening the other"
        return whole_refit, refit_score, False, reason
    return best[0], best[1], True, best[3]


# --- the adapter file ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Adapter:
    """A household's heads for one model file: what ``<config>/nilm/adapters/`` holds."""

    appliance: str
    model_sha256: str
    heads: Heads
    fit: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        h = self.heads
        raw = {
            "schema_version": ADAPTER_SCHEMA_VERSION,
            "appliance": self.appliance,
            "model_sha256": self.model_sha256,
            "status": {
                "weights": [float(v) for v in h.status_weights],
                "bias": h.status_bias,
                "threshold": h.threshold,
            },
            "power": {"weights": [float(v) for v in h.power_weights], "bias": h.power_bias},
            "fit": self.fit,
        }
        return json.dumps(raw, indent=1, sort_keys=True) + "\n"

    def save(self, path: Path) -> None:
        """Write atomically: a crash mid-write leaves the previous adapter, never half."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)


def _vector(raw: Any, key: str, features: int) -> Float64Array:
    values = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(values, list) or len(values) != features:
        raise AdapterError(f"{key} must be a list of {features} numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise AdapterError(f"{key} must hold numbers only")
    out = np.asarray(values, dtype=np.float64)
    if not np.isfinite(out).all() or np.abs(out).max(initial=0.0) > MAX_WEIGHT:
        raise AdapterError(f"{key} must be finite and at most {MAX_WEIGHT:g} in size")
    return out


def _scalar(raw: Any, key: str, low: float, high: float) -> float:
    value = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise AdapterError(f"{key} must be a number")
    if not (math.isfinite(value) and low <= value <= high):
        raise AdapterError(f"{key} must be a finite number in [{low:g}, {high:g}]")
    return float(value)


def parse_adapter(raw: Any, card: ModelCard) -> Adapter:
    """Validate parsed JSON against the model it claims to adapt; raise AdapterError."""
    if not isinstance(raw, dict):
        raise AdapterError("an adapter must be a JSON object")
    if raw.get("schema_version") != ADAPTER_SCHEMA_VERSION:
        raise AdapterError(f"unsupported adapter schema_version {raw.get('schema_version')!r}")
    if card.head is None:
        raise AdapterError(f"model card {card.name} names no head: it cannot be adapted")
    if raw.get("model_sha256") != card.tflite_sha256 or not card.tflite_sha256:
        raise AdapterError("the adapter was fitted to another model file (sha256 differs)")
    if raw.get("appliance") != card.appliance:
        raise AdapterError(f"the adapter is for {str(raw.get('appliance'))[:40]!r}")
    features = card.head.features
    status, power = raw.get("status"), raw.get("power")
    heads = Heads(
        status_weights=_vector(status, "weights", features),
        status_bias=_scalar(status, "bias", -MAX_WEIGHT, MAX_WEIGHT),
        power_weights=_vector(power, "weights", features),
        power_bias=_scalar(power, "bias", -MAX_POWER_W, MAX_POWER_W),
        threshold=_scalar(status, "threshold", 1e-6, 1.0 - 1e-6),
    )
    fit = raw.get("fit", {})
    if not isinstance(fit, dict):
        raise AdapterError("fit must be a JSON object")
    return Adapter(card.appliance, card.tflite_sha256, heads, fit)


def load_adapter(path: Path, card: ModelCard) -> Adapter:
    """Read and validate an adapter file (bounded in size); raise AdapterError."""
    try:
        data = read_regular_file(path, MAX_ADAPTER_BYTES)
        raw = json.loads(data.decode("utf-8"))
    except FileNotFoundError as err:
        raise AdapterError(f"adapter {path.name} not found") from err
    except (OSError, ValueError, RecursionError) as err:
        raise AdapterError(f"adapter {path.name} cannot be read: {err}"[:300]) from err
    return parse_adapter(raw, card)
