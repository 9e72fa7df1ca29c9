"""The scratch layers alone: extreme inputs, dtypes, losses, repr."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import scratch
from compare.harness import tolerance
from compare.harness.masks import draws, follow
from compare.layers import LAYER_KINDS, LayerKind

EXTREMES = np.array([[-1e4, -1e3, -50.0, -1.0, 0.0], [1.0, 50.0, 1e3, 1e4, -1e4]])
ELEMENTWISE = [kind for kind in LAYER_KINDS if not kind.takes_dtype]
"""The kinds with no arrays of their own: activations and Softmax."""


def assert_close(actual: np.ndarray, expected: torch.Tensor, what: str) -> None:
    expected = expected.detach().numpy()
    tol = tolerance.for_dtype(actual.dtype)
    _, rel = tolerance.errors(actual, expected)
    assert tol.passes(actual, expected, rel), f"{what}: rel error {rel:.3e} ({tol.name})"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ELEMENTWISE, ids=lambda kind: kind.name)
def test_activation_at_extreme_inputs(kind: LayerKind, dtype: type) -> None:
    """±1e4 gives no NaN, no inf, no overflow (underflow to 0 is the right answer), and matches
    torch forward and back."""
    x = EXTREMES.astype(dtype)
    upstream = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    layer = kind.scratch_factory(kind.complete({}))()
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        y = layer.forward(x).copy()
        dx = layer.backward(upstream)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    assert y.dtype == dx.dtype == dtype
    xt = torch.from_numpy(x).requires_grad_()
    torch_layer = kind.torch_like(layer)
    if draws(kind, layer):  # Dropout: torch applies the mask scratch drew
        follow(layer, torch_layer, kind.name)
    yt = torch_layer(xt)
    yt.backward(torch.from_numpy(upstream))
    assert_close(y, yt, f"{kind.name} forward")
    assert_close(dx, xt.grad, f"{kind.name} backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_matches_torch_at_extreme_logits(dtype: type) -> None:
    logits = np.vstack([EXTREMES, np.zeros(5), np.full(5, 1e4)]).astype(dtype)
    target = np.array([0, 4, 2, 3])
    loss = scratch.CrossEntropyLoss()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss.forward(logits, target)
        grad = loss.backward()
    assert grad.dtype == dtype
    lt = torch.from_numpy(logits).requires_grad_()
    expected = nn.CrossEntropyLoss()(lt, torch.from_numpy(target))
    expected.backward()
    assert np.isfinite(value)
    assert value == pytest.approx(expected.item(), rel=1e-6)
    assert_close(grad, lt.grad, "cross-entropy gradient")


def test_cross_entropy_rejects_bad_targets() -> None:
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\)"):
        scratch.CrossEntropyLoss().forward(np.zeros((2, 3)), np.array([0, 3]))


def test_mse_matches_torch() -> None:
    rng = np.random.default_rng(1)
    pred, target = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    loss = scratch.MSELoss()
    value, grad = loss.forward(pred, target), loss.backward()
    pt = torch.from_numpy(pred).requires_grad_()
    expected = nn.MSELoss()(pt, torch.from_numpy(target))
    expected.backward()
    assert value == pytest.approx(expected.item(), rel=1e-14)
    assert_close(grad, pt.grad, "MSE gradient")


def test_float32_stays_float32() -> None:
    model = scratch.mlp((20, 16, 10), scratch.Tanh, rng=np.random.default_rng(0), dtype=np.float32)
    x = np.random.default_rng(1).standard_normal((4, 20)).astype(np.float32)
    assert model.forward(x).dtype == np.float32
    assert model.backward(np.ones((4, 10), np.float32)).dtype == np.float32
    assert all(p.value.dtype == p.grad.dtype == np.float32 for p in model.parameters())


def test_linear_rejects_wrong_dtype_and_shape() -> None:
    layer = scratch.Linear(3, 2, rng=np.random.default_rng(0), dtype=np.float32)
    with pytest.raises(TypeError, match="float32 weights but got float64 input"):
        layer.forward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3\), got \(1, 4\)"):
        layer.forward(np.zeros((1, 4), np.float32))


def test_initialization_draws_what_nn_linear_draws() -> None:
    """U(-1/sqrt(in), 1/sqrt(in)) for weight and bias, like nn.Linear's kaiming_uniform_(a=√5)."""
    fan_in = 400
    layer = scratch.Linear(fan_in, 300, rng=np.random.default_rng(0), dtype=np.float64)
    torch.manual_seed(0)
    reference = nn.Linear(fan_in, 300, dtype=torch.float64)
    bound = 1 / np.sqrt(fan_in)
    for mine, theirs in [(layer.W, reference.weight), (layer.b, reference.bias)]:
        theirs = theirs.detach().numpy()
        assert np.abs(mine).max() <= bound and np.abs(theirs).max() <= bound
        assert mine.std() == pytest.approx(theirs.std(), rel=0.1)
        assert mine.std() == pytest.approx(bound / np.sqrt(3), rel=0.1)


def test_same_seed_same_weights() -> None:
    a = scratch.mlp((8, 4, 2), scratch.ReLU, rng=np.random.default_rng(5))
    b = scratch.mlp((8, 4, 2), scratch.ReLU, rng=np.random.default_rng(5))
    assert all(np.array_equal(p.value, q.value)
               for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_repr_reads_like_pytorch() -> None:
    import torch_ref

    mine = repr(scratch.mlp((784, 128, 10), scratch.ReLU, rng=np.random.default_rng(0)))
    theirs = repr(torch_ref.mlp((784, 128, 10)))
    assert mine == theirs


def test_named_parameters_use_torch_names() -> None:
    model = scratch.mlp((5, 4, 3), scratch.ReLU, rng=np.random.default_rng(0))
    assert [name for name, _ in model.named_parameters()] == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
    ]


@pytest.mark.parametrize("layer_type", [scratch.ReLU, scratch.Sigmoid, scratch.Tanh,
                                        scratch.Softmax])
def test_a_later_call_never_changes_what_a_layer_returned(layer_type: type) -> None:
    """``y1 = layer(x1); y2 = layer(x2)`` leaves y1 as it was, forward and backward alike."""
    rng = np.random.default_rng(3)
    x1, x2, dy1, dy2 = (rng.standard_normal((4, 5)) for _ in range(4))
    layers = [layer_type(), scratch.Linear(5, 5, rng=rng, dtype=np.float64)]
    for layer in layers:
        y1 = layer.forward(x1)
        dx1 = layer.backward(dy1)
        kept = y1.copy(), dx1.copy()
        layer.forward(x2)
        layer.backward(dy2)
        assert np.array_equal(y1, kept[0]) and np.array_equal(dx1, kept[1]), repr(layer)


def test_linear_backward_is_the_seed_formulas() -> None:
    """dW = xᵀ·dy, db = Σ dy, dx = dy·Wᵀ, written out independently in float64."""
    rng = np.random.default_rng(4)
    layer = scratch.Linear(6, 3, rng=rng, dtype=np.float64)
    x, dy = rng.standard_normal((5, 6)), rng.standard_normal((5, 3))
    y = layer.forward(x)
    dx = layer.backward(dy)
    for got, expected, name in [(y, np.einsum("ni,io->no", x, layer.W) + layer.b, "y"),
                                (layer.dW, np.einsum("ni,no->io", x, dy), "dW"),
                                (layer.db, dy.sum(axis=0), "db"),
                                (dx, np.einsum("no,io->ni", dy, layer.W), "dx")]:
        _, rel = tolerance.errors(got, expected)
        assert rel <= tolerance.FLOAT64_MAX_REL, f"{name}: {rel:.2e}; {tolerance.FLOAT64.name}"
