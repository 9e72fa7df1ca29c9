"""Check any pair of layers: a scratch layer against a torch module, forward and backward.

:func:`check_layer` copies the scratch layer's parameters and buffers into a copy of the torch
module, runs a batch through both, and compares, row by row, the output Y, the gradient of every
parameter and dL/dx for the loss ``L = Σ upstream ⊙ Y``, and the buffers after that pass (batch
norm's running estimates); a third opinion, central differences in float64
(:mod:`compare.harness.finite_differences`), checks scratch's gradients on their own. A pair of
Sequentials is compared layer by layer. ``compare parity`` runs the same code on the twins.

Rows and the report: :mod:`compare.harness.report`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import ParamSpec, Protocol, TypeVar

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - PyTorch's own spelling
from torch import nn

import scratch
from compare.errors import check_whole_number
from compare.harness import finite_differences, tolerance
from compare.harness.masks import hold_mask
from compare.harness.report import LayerCheckError, LayerReport, Row, make_row
from compare.harness.term_scale import summed_terms
from compare.harness.twins import (
    WeightMismatchError,
    arrays,
    check_same_layer,
    load_torch_state_dict,
)
from compare.layers import LAYER_KINDS, LayerKind, kind_of, torch_layout

P = ParamSpec("P")
R = TypeVar("R")


def with_autograd(function: Callable[P, R]) -> Callable[P, R]:
    """``function``, run with autograd on even where its caller turned it off
    (``torch.no_grad()``, ``torch.inference_mode()``): the check needs torch's gradients."""
    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with torch.inference_mode(False), torch.enable_grad():
            return function(*args, **kwargs)

    return run


class Loss(Protocol):
    """A scalar loss of a network's output Y, as both twins compute it."""

    section: str

    def scratch(self, output: np.ndarray) -> tuple[float, np.ndarray]:
        """(L, dL/dY) for Y = ``output``, in its dtype."""

    def torch(self, output: torch.Tensor) -> torch.Tensor:
        """L, a scalar autograd can differentiate."""


@dataclass(frozen=True)
class UpstreamLoss:
    """``L = Σ upstream ⊙ Y``: dL/dY is ``upstream`` itself, so any gradient can be handed to a
    backward pass (a plain ``Y.sum()`` would give Softmax a zero gradient and prove nothing)."""

    upstream: np.ndarray
    section: str = "grad(upstream)"

    def scratch(self, output: np.ndarray) -> tuple[float, np.ndarray]:
        upstream = self.upstream.astype(output.dtype, copy=False)
        return float(np.sum(upstream * output)), upstream

    def torch(self, output: torch.Tensor) -> torch.Tensor:
        return (output * torch.from_numpy(self.upstream)).sum()


@dataclass(frozen=True)
class CrossEntropy:
    """Cross-entropy of logits Y (N, classes) for class indices ``target`` (N,), as training."""

    target: np.ndarray
    section: str = "grad(cross-entropy)"

    def scratch(self, output: np.ndarray) -> tuple[float, np.ndarray]:
        loss = scratch.CrossEntropyLoss()
        value = loss.forward(output, self.target)
        return value, loss.backward()

    def torch(self, output: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, torch.from_numpy(self.target))


@dataclass(frozen=True)
class Pair:
    """One layer of each twin holding the same parameters; ``label`` names it in the rows."""

    label: str
    kind: LayerKind
    scratch: scratch.Module
    torch: nn.Module

    def tensor(self, name: str) -> str:
        """How rows name parameter ``name``'s gradient: ``weight`` -> ``dW``."""
        return "d" + self.kind.symbol(name)

    def torch_layout(self, name: str, array: np.ndarray) -> np.ndarray:
        """Scratch's array ``name`` as torch lays it out (:func:`compare.layers.torch_layout`)."""
        return torch_layout(self.scratch, self.kind, name, array)


def layer_pairs(scratch_layer: scratch.Module, torch_module: nn.Module, dtype: np.dtype
                ) -> list[Pair]:
    """The layers to compare: a pair, or each layer of a pair of Sequentials. The torch side is
    a copy of ``torch_module`` cast to ``dtype`` (the caller's is left alone) that holds the
    scratch parameters (LayerCheckError when they do not correspond)."""
    if not isinstance(scratch_layer, scratch.Module) or not isinstance(torch_module, nn.Module):
        raise LayerCheckError(f"need a scratch.Module and a torch.nn.Module, got "
                              f"{type(scratch_layer).__name__} and {type(torch_module).__name__}")
    torch_copy = copy.deepcopy(torch_module).to("cpu", getattr(torch, np.dtype(dtype).name))
    torch_copy.requires_grad_()  # a parameter the caller froze has a gradient to compare
    if isinstance(scratch_layer, scratch.Sequential) and isinstance(torch_copy, nn.Sequential):
        if len(scratch_layer) != len(torch_copy):
            raise LayerCheckError(f"the scratch Sequential has {len(scratch_layer)} layers, the "
                                  f"torch one {len(torch_copy)}")
        if not len(scratch_layer):
            raise LayerCheckError("nothing to compare: both Sequentials are empty")
        return [pair_of(f"{index} {type(mine).__name__}", mine, theirs, dtype)
                for index, (mine, theirs) in enumerate(zip(scratch_layer, torch_copy,
                                                           strict=True))]
    return [pair_of(type(scratch_layer).__name__, scratch_layer, torch_copy, dtype)]


def pair_of(label: str, mine: scratch.Module, theirs: nn.Module, dtype: np.dtype) -> Pair:
    """The pair, ``theirs`` now holding ``mine``'s parameters and buffers (by name, in
    PyTorch's layout); a random Dropout holds one mask, which ``theirs`` applies too
    (:mod:`compare.harness.masks`)."""
    kind = pair_kind(label, mine, theirs)
    if bool(mine.training) != theirs.training:
        raise LayerCheckError(f"{label}: scratch is in {mode(mine.training)} mode, torch in "
                              f"{mode(theirs.training)} mode; call train() or eval() on both")
    check_buffers(label, mine)
    try:
        check_same_layer(label, kind, mine, theirs)
    except WeightMismatchError as error:
        raise LayerCheckError(str(error)) from None
    check_parameters(label, mine, theirs, dtype)
    pair = Pair(label, kind, mine, theirs)
    load_torch_state_dict(theirs, {name: pair.torch_layout(name, array)
                                   for name, array in arrays(mine)})
    return replace(pair, scratch=hold_mask(kind, mine, theirs, label))


def pair_kind(label: str, mine: scratch.Module, theirs: nn.Module) -> LayerKind:
    """The table's kind of ``mine`` (of its class, or of the table class it derives from when
    ``theirs`` is of that kind too), which ``theirs`` must be of; for a layer the table lacks, a
    kind of its own: no settings, nothing transposed."""
    kind = kind_of(mine) or next((kind for kind in LAYER_KINDS if isinstance(mine, kind.scratch)
                                  and isinstance(theirs, kind.torch_class())), None)
    if kind is None:
        return LayerKind(type(mine).__name__, type(mine), type(theirs).__name__)
    if not isinstance(theirs, kind.torch_class()):
        raise LayerCheckError(f"{label}: scratch {type(mine).__name__} pairs with torch.nn."
                              f"{kind.torch}, not with {type(theirs).__name__}")
    return kind


def check_buffers(label: str, mine: scratch.Module) -> None:
    """Each buffer its ``buffer_names`` list is an array the layer holds."""
    for module in finite_differences.modules(mine):
        for name in module.buffer_names:
            value = getattr(module, name, None)
            if not isinstance(value, np.ndarray):
                raise LayerCheckError(f"{label}: buffer_names lists {name}, of type "
                                      f"{type(value).__name__}, not a NumPy array")


def mode(training: bool) -> str:
    return "training" if training else "evaluation"


def check_parameters(label: str, mine: scratch.Module, theirs: nn.Module, dtype: np.dtype
                     ) -> None:
    """The same parameter names on both sides, none empty, scratch's of ``dtype``."""
    names = [name for name, _ in mine.named_parameters()]
    torch_names = [name for name, _ in theirs.named_parameters()]
    if sorted(names) != sorted(torch_names):
        raise LayerCheckError(f"{label}: scratch parameters {sorted(names) or 'none'}, torch "
                              f"parameters {sorted(torch_names) or 'none'}")
    for name, parameter in mine.named_parameters():
        if parameter.value.size == 0:
            raise LayerCheckError(f"{label}: parameter {name} has no entries to compare")
        if parameter.value.dtype != dtype:
            raise LayerCheckError(f"{label}: parameter {name} is {parameter.value.dtype}, x is "
                                  f"{np.dtype(dtype)}; build the layer in x's dtype")


@dataclass(frozen=True)
class Pass:
    """One twin's forward and backward pass, per layer: its output Y, dL/d(its input), and its
    parameters' gradients by name (PyTorch's layout)."""

    outputs: list[np.ndarray]
    input_grads: list[np.ndarray]
    grads: list[dict[str, np.ndarray]]


def run_scratch(pairs: list[Pair], x: np.ndarray) -> list[np.ndarray]:
    """The scratch layers' outputs for ``x``, first layer first."""
    outputs = []
    for pair in pairs:
        x = returned(pair.label, "forward returned", pair.scratch.forward(x))
        outputs.append(x)
    return outputs


def returned(label: str, what: str, value: object) -> np.ndarray:
    """``value``, which the layer's ``what`` gave (LayerCheckError unless an array)."""
    if not isinstance(value, np.ndarray):
        raise LayerCheckError(f"{label}: {what} a {type(value).__name__}, not a NumPy array")
    return value


def scratch_pass(pairs: list[Pair], x: np.ndarray, loss: Loss) -> Pass:
    """The scratch layers' pass; each parameter's ``.grad`` is NaN until ``backward`` writes it,
    so a gradient left unwritten, or added to rather than written, cannot pass."""
    outputs = run_scratch(pairs, x)
    grad = loss.scratch(outputs[-1])[1]
    for pair in pairs:
        for _, p in pair.scratch.named_parameters():
            p.grad[...] = np.nan
    input_grads = []
    for pair in reversed(pairs):
        grad = returned(pair.label, "backward returned", pair.scratch.backward(grad))
        input_grads.insert(0, grad)
    grads = [{name: pair.torch_layout(name, returned(
                  pair.label, f"backward left {name}.grad", p.grad)).copy()
              for name, p in pair.scratch.named_parameters()} for pair in pairs]
    return Pass(outputs, input_grads, grads)


@dataclass(frozen=True)
class TorchPass(Pass):
    """Torch's pass, its graph kept: each layer's input and output tensors, dL/d(output) and its
    module, so that S of any of its gradients can be computed when a row needs it."""

    input_tensors: list[torch.Tensor]
    output_tensors: list[torch.Tensor]
    upstreams: list[torch.Tensor]
    modules: list[nn.Module]

    def term_scale(self, index: int, name: str | None) -> float:
        """S of layer ``index``'s gradient of parameter ``name`` (None: of its input)."""
        wrt = (self.input_tensors[index] if name is None else
               dict(self.modules[index].named_parameters())[name])
        return summed_terms(self.output_tensors[index], self.upstreams[index], wrt)


def torch_pass(pairs: list[Pair], x: np.ndarray, loss: Loss) -> TorchPass:
    h = torch.from_numpy(x.copy()).requires_grad_()
    inputs, outputs = [], []
    for pair in pairs:
        pair.torch.zero_grad(set_to_none=True)
        inputs.append(h)
        h = differentiable(pair, pair.torch(h))
        h.retain_grad()
        outputs.append(h)
    loss.torch(h).backward(retain_graph=True)  # kept for S (TorchPass.term_scale)
    grads = [{name: grad_of(p) for name, p in pair.torch.named_parameters()} for pair in pairs]
    # copied: a later autograd.grad call through a retained output writes over its .grad
    upstreams = [torch.from_numpy(grad_of(y).copy()) for y in outputs]
    return TorchPass([y.detach().numpy() for y in outputs], [grad_of(h) for h in inputs], grads,
                     inputs, outputs, upstreams, [pair.torch for pair in pairs])


def differentiable(pair: Pair, output: object) -> torch.Tensor:
    """``output``, which the pair's torch module gave (LayerCheckError unless a tensor with a
    gradient)."""
    if not isinstance(output, torch.Tensor):
        raise LayerCheckError(f"{pair.label}: torch's {type(pair.torch).__name__} returned a "
                              f"{type(output).__name__}, not a tensor")
    if not output.requires_grad:
        raise LayerCheckError(f"{pair.label}: torch's {type(pair.torch).__name__} returned a "
                              "tensor autograd cannot differentiate (detached, or not of "
                              "floating point)")
    return output


def grad_of(tensor: torch.Tensor) -> np.ndarray:
    """``tensor.grad`` as an array; zeros where autograd left none (L does not depend on it)."""
    if tensor.grad is None:
        return np.zeros(tuple(tensor.shape), dtype=str(tensor.dtype).removeprefix("torch."))
    return tensor.grad.detach().numpy()


def twin_rows(pairs: list[Pair], x: np.ndarray, loss: Loss, *, forward: bool = False,
              prefix: str = "") -> list[Row]:
    """Scratch against torch for input ``x`` (N, ...) and ``loss``: each layer's Y (with
    ``forward``), then each layer's parameter gradients and dX, to ``x``'s dtype's tolerance;
    ``prefix`` (such as ``"eval "``) begins the rows' sections."""
    tol = tolerance.for_dtype(x.dtype)
    mine, theirs = scratch_pass(pairs, x, loss), torch_pass(pairs, x, loss)
    rows = [make_row(f"{prefix}forward", pair.label, "Y", a, b, tol)
            for pair, a, b in zip(pairs, mine.outputs, theirs.outputs, strict=True)
            ] if forward else []
    section = prefix + loss.section
    for index, pair in enumerate(pairs):
        named = [(name, pair.tensor(name), grad) for name, grad in mine.grads[index].items()]
        for name, tensor, grad in [*named, (None, "dX", mine.input_grads[index])]:
            expected = theirs.input_grads[index] if name is None else theirs.grads[index][name]
            rows.append(gradient_row(
                functools.partial(make_row, section, pair.label, tensor, grad, expected), tol,
                functools.partial(theirs.term_scale, index, name)))
    return rows


def gradient_row(row_for: Callable[[tolerance.Tolerance], Row], tol: tolerance.Tolerance,
                 term_scale: Callable[[], float]) -> Row:
    """The row of a gradient, ``row_for(tol)``; one whose relative error against max|b| is over
    the relative limit (float64's, or float32's rtol) is measured again against
    ``term_scale()``, its S: its sum over the batch may have cancelled. (S changes float32's
    verdict in no way, elementwise as it is; only the relative error it shows.)"""
    row = row_for(tol)
    if row.rel_error <= (tol.rtol if tol.max_rel is None else tol.max_rel):
        return row
    return row_for(replace(tol, scale=term_scale()))


def buffer_rows(pairs: list[Pair]) -> list[Row]:
    """Each layer's buffers (batch norm's running estimates and count), scratch's against the
    torch copy's after the passes both made: floats to their dtype's tolerance, counts exactly."""
    rows = []
    for pair in pairs:
        theirs = pair.torch.state_dict()
        for name, array in pair.scratch.named_buffers():
            tol = (tolerance.for_dtype(array.dtype) if np.issubdtype(array.dtype, np.floating)
                   else tolerance.EXACT)
            rows.append(make_row("buffers", pair.label, name, pair.torch_layout(name, array),
                                 theirs[name].detach().cpu().numpy(), tol))
    return rows


def finite_difference_rows(pairs: list[Pair], x: np.ndarray, loss: Loss, seed: int
                           ) -> tuple[list[Row], float]:
    """Scratch's gradients, on a float64 copy of its layers, against central differences of
    ``loss``: every parameter's and the input's (a sample of entries, and a projection); the
    rows and the tolerance's absolute floor."""
    copies = [replace(pair, scratch=layer) for pair, layer in
              zip(pairs, finite_differences.float64_copy([p.scratch for p in pairs]), strict=True)]
    x = x.astype(np.float64)
    analytic = scratch_pass(copies, x, loss)
    check_deterministic(copies, x, analytic.outputs)
    value, output_grad = loss.scratch(analytic.outputs[-1])
    scale = abs(value) + float(np.sum(np.abs(analytic.outputs[-1] * output_grad)))
    if not np.isfinite(scale):
        raise LayerCheckError(f"the loss is {value} for this x: the output overflows float64, "
                              "and finite differences of it measure nothing; choose a smaller x")
    tol = tolerance.finite_differences(scale, finite_differences.STEP)
    rng = np.random.default_rng([seed, 3])
    section = f"finite-diff {loss.section}"

    def evaluate() -> float:
        return loss.scratch(run_scratch(copies, x)[-1])[0]

    rows = []
    for index, pair in enumerate(copies):
        for name, p in pair.scratch.named_parameters():
            found = finite_differences.opinion(evaluate, pair.torch_layout(name, p.value),
                                               analytic.grads[index][name], rng)
            rows += opinion_rows(section, pair.label, pair.tensor(name), found, tol)
        if index == 0:
            found = finite_differences.opinion(evaluate, x, analytic.input_grads[0], rng)
            rows += opinion_rows(section, pair.label, "dX", found, tol)
    return rows, tol.atol


def check_deterministic(pairs: list[Pair], x: np.ndarray, outputs: list[np.ndarray]) -> None:
    """Each layer gives ``outputs`` again for ``x`` (LayerCheckError naming the first that does
    not: central differences of a random function measure its noise, not its gradient)."""
    for pair, first, again in zip(pairs, outputs, run_scratch(pairs, x), strict=True):
        if not (np.array_equal(first, again, equal_nan=True)
                or tolerance.FLOAT64.passes(again, first)):
            raise LayerCheckError(
                f"{pair.label}: two forward passes of the same x differ (by up to "
                f"{tolerance.errors(again, first)[0]:.3e}): a random layer cannot be checked; "
                "fix its randomness (evaluation mode, a seed)")


def opinion_rows(section: str, layer: str, tensor: str, found: finite_differences.Opinion,
                 tol: tolerance.Tolerance) -> list[Row]:
    """Two rows: the sampled entries (naming the worst by its index in the tensor), and the
    projection ``tensor·v``."""
    sampled = make_row(section, layer, tensor, found.analytic, found.numeric, tol)
    return [replace(sampled, worst=found.indices[sampled.worst[0]]),
            make_row(section, layer, f"{tensor}·v", np.array(found.projected),
                     np.array(found.directional), tol)]


@with_autograd
def check_layer(scratch_layer: scratch.Module, torch_module: nn.Module, x: np.ndarray,
                upstream: np.ndarray | None = None, *, seed: int = 0) -> LayerReport:
    """Compare a scratch layer with a torch module on the batch ``x`` (N, ..., float32 or
    float64): output Y, dL/dx and every parameter's gradient for ``L = Σ upstream ⊙ Y``, to the
    dtype's tolerance, then scratch's gradients against central differences in float64.

    ``upstream`` (Y's shape) defaults to a standard normal draw from ``seed``, which also picks
    the finite differences' entries and directions. The torch module is used as a copy, cast to
    x's dtype, holding the scratch layer's parameters: copied by name, through the layer table's
    transposes where the scratch layer's kind is in the table. A pair of Sequentials is compared
    layer by layer. The scratch layer runs on x's entries shuffled first, so that one that keeps
    an earlier batch fails. LayerCheckError when there is nothing to compare, the parameters do
    not correspond, the twins are in two modes, or the scratch layer gives no array or is random.
    """
    check_whole_number("seed", seed, 0)
    dtype = check_input(x)
    pairs = layer_pairs(scratch_layer, torch_module, dtype)
    with buffers_kept(pairs):  # the twins' buffers stay equal, for buffer_rows
        output = run_scratch(pairs, shuffled(x, seed))[-1]  # a layer keeping a batch then fails
    loss = UpstreamLoss(upstream_for(output, upstream, seed).astype(dtype))
    rows = twin_rows(pairs, x, loss, forward=True) + buffer_rows(pairs)
    finite_difference, floor = finite_difference_rows(pairs, x, loss, seed)
    title = (f"check_layer scratch {type(scratch_layer).__name__} vs torch "
             f"{type(torch_module).__name__}, {dtype.name}, x {x.shape}, seed {seed}")
    return LayerReport(title, dtype.name, rows + finite_difference,
                       {f"finite-diff {loss.section}": floor})


@contextlib.contextmanager
def buffers_kept(pairs: list[Pair]) -> Iterator[None]:
    """The scratch layers' buffers as they were before the block (a training forward pass of
    batch norm moves its running estimates)."""
    kept = [(array, array.copy()) for pair in pairs for _, array in pair.scratch.named_buffers()]
    try:
        yield
    finally:
        for array, before in kept:
            np.copyto(array, before)


def shuffled(x: np.ndarray, seed: int) -> np.ndarray:
    """Another batch of x's shape, dtype and values: its entries in a random order."""
    return np.random.default_rng([seed, 2]).permutation(x.ravel()).reshape(x.shape)


def check_input(x: object) -> np.dtype:
    """x's dtype (LayerCheckError unless a non-empty, finite float32 or float64 array)."""
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        raise LayerCheckError(f"x must be a float32 or float64 NumPy array, got "
                              f"{getattr(x, 'dtype', type(x).__name__)}")
    if x.size == 0:
        raise LayerCheckError(f"nothing to compare: x has shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise LayerCheckError("x holds NaN or infinity")
    return x.dtype


def upstream_for(output: np.ndarray, upstream: np.ndarray | None, seed: int) -> np.ndarray:
    """dL/dY: ``upstream`` checked against the output Y, or a standard normal draw."""
    if output.size == 0:
        raise LayerCheckError(f"nothing to compare: the output has shape {output.shape}")
    if upstream is None:
        upstream = np.random.default_rng([seed, 1]).standard_normal(output.shape)
    upstream = np.asarray(upstream)
    if upstream.shape != output.shape:
        raise LayerCheckError(f"upstream must have the output's shape {output.shape}, got "
                              f"{upstream.shape}")
    if not any(np.issubdtype(upstream.dtype, kind) for kind in (np.integer, np.floating)):
        raise LayerCheckError(f"upstream must hold real numbers, got {upstream.dtype}")
    if not np.all(np.isfinite(upstream)):
        raise LayerCheckError("upstream holds NaN or infinity")
    return upstream
