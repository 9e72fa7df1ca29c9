"""``--init``: the scratch twin draws each scheme from torch.nn.init's distribution (checked on
large layers against torch's own draw), with calculate_gain's gains, and the torch twin holds the
same weights; zero init keeps a layer's neurons identical; the flag is kept by checkpoints, evaluate
and resume, and a bad one is refused in one line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compare import build_twins, cli
from compare.harness.arch import Architecture
from compare.harness.twins import scratch_state_dict, torch_state_dict
from compare.layers import ACTIVATIONS
from compare.training import checkpoint
from scratch.init import SCHEMES
from tests.helpers import ARCH, train

FAN_IN, FAN_OUT = 2000, 500
"""A large layer, not square: a fan_in taken from the wrong axis gives twice the std."""
STD = 0.05
SIGMAS = 6
"""How many standard errors two draws' statistics may differ by. Of n i.i.d. entries of std σ,
the sample mean has standard error σ/√n, so two independent draws' means differ with standard
error σ·√(2/n); the sample std has standard error σ/√(2n) for a normal distribution (less,
0.45·σ/√n, for a uniform one), so two stds differ with at most σ/√n. Six of them: a correct
draw fails with probability about 2e-9 per comparison, whatever the seeds; with n = 10⁶ the
std is checked to 0.6%."""
TORCH_NONLINEARITY = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh",
                      "leaky_relu": "leaky_relu", "none": "linear"}
"""Each activation of the layer table by the name torch.nn.init.calculate_gain knows it by."""


def torch_gain(activation: str, settings: dict[str, float]) -> float:
    return nn.init.calculate_gain(TORCH_NONLINEARITY[activation],
                                  settings.get("negative_slope"))


def torch_draw(scheme: str, shape: tuple[int, int], activation: str,
               settings: dict[str, float]) -> np.ndarray:
    """torch.nn.init's draw of ``scheme`` on a float64 weight of ``shape`` (out, in), for a
    layer feeding ``activation``."""
    weight = torch.empty(shape, dtype=torch.float64)
    nonlinearity, slope = TORCH_NONLINEARITY[activation], settings.get("negative_slope", 0.0)
    if scheme == "torch":
        weight = nn.Linear(shape[1], shape[0], dtype=torch.float64).weight.detach()
    elif scheme == "normal":
        nn.init.normal_(weight, 0.0, STD)
    elif scheme == "xavier":
        nn.init.xavier_uniform_(weight, gain=torch_gain(activation, settings))
    elif scheme == "kaiming":
        nn.init.kaiming_normal_(weight, a=slope, mode="fan_in", nonlinearity=nonlinearity)
    else:
        nn.init.zeros_(weight)
    return weight.numpy()


def expected_std(scheme: str, gain: float) -> float:
    """The documented std of a weight (out, in) = (FAN_OUT, FAN_IN) drawn by ``scheme``."""
    return {"torch": 1 / math.sqrt(3 * FAN_IN), "zeros": 0.0, "normal": STD,
            "xavier": gain * math.sqrt(2 / (FAN_IN + FAN_OUT)),
            "kaiming": gain / math.sqrt(FAN_IN)}[scheme]


def assert_same_distribution(ours: np.ndarray, theirs: np.ndarray, std: float,
                             context: str) -> None:
    """Mean and std of two draws of n entries agree within :data:`SIGMAS` standard errors, and
    both stds with ``std``, the documented one."""
    n = ours.size
    assert ours.size == theirs.size
    mean_bound = SIGMAS * std * math.sqrt(2 / n)  # two means
    one_std_bound, two_std_bound = SIGMAS * std / math.sqrt(2 * n), SIGMAS * std / math.sqrt(n)
    assert abs(ours.mean() - theirs.mean()) <= mean_bound, (
        f"{context}: mean {ours.mean():.3e} against torch's {theirs.mean():.3e}, more than "
        f"{mean_bound:.1e} ({SIGMAS} standard errors) apart")
    assert abs(ours.std() - theirs.std()) <= two_std_bound, (
        f"{context}: std {ours.std():.5e} against torch's {theirs.std():.5e}, more than "
        f"{two_std_bound:.1e} ({SIGMAS} standard errors) apart")
    for name, draw in (("scratch", ours), ("torch", theirs)):
        assert abs(draw.std() - std) <= one_std_bound, (
            f"{context}: {name}'s std {draw.std():.5e} against the documented {std:.5e}, more "
            f"than {one_std_bound:.1e} ({SIGMAS} standard errors) apart")


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_the_gains_are_calculate_gains(activation: str) -> None:
    kind = ACTIVATIONS[activation]
    every = [{}] if not kind.settings else [{"negative_slope": s} for s in (0.0, 0.01, 0.2, 1.0)]
    for given in every:
        settings = kind.complete(given)
        assert kind.gain(**settings) == pytest.approx(torch_gain(activation, settings),
                                                      rel=1e-15), f"{activation} {settings}"


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("scheme", ["torch", *SCHEMES])
def test_a_hidden_layer_is_drawn_as_torch_nn_init_draws(scheme: str, activation: str) -> None:
    """The first Linear of FAN_IN-FAN_OUT-10 feeds the activation: its gain is the activation's."""
    arch = Architecture((FAN_IN, FAN_OUT, 10), activation, init=scheme,
                        init_std=STD if scheme == "normal" else None)
    first = arch.build_scratch(seed=0, dtype="float64")[0]
    torch.manual_seed(0)
    gain = ACTIVATIONS[activation].gain(**arch.settings)
    theirs = torch_draw(scheme, (FAN_OUT, FAN_IN), activation, arch.settings)
    ours = first.weight.value.T  # scratch (in, out) as torch's (out, in)
    assert ours.shape == theirs.shape
    if scheme == "zeros":
        assert not ours.any() and not theirs.any()
    else:
        assert_same_distribution(ours, theirs, expected_std(scheme, gain),
                                 f"--init {scheme}, {activation}, weight ({FAN_OUT}, {FAN_IN})")
    if scheme != "torch":
        assert not first.bias.value.any(), f"--init {scheme}: the biases are 0"


@pytest.mark.parametrize("scheme", ["xavier", "kaiming"])
def test_the_last_layer_has_gain_1(scheme: str) -> None:
    """It feeds the softmax, not the activation: tanh's 5/3 would show as a std 5/3 too large."""
    arch = Architecture((FAN_IN, FAN_OUT), "tanh", init=scheme)
    layer = arch.build_scratch(seed=0, dtype="float64")[0]
    torch.manual_seed(0)
    theirs = torch_draw(scheme, (FAN_OUT, FAN_IN), "none", {})
    assert_same_distribution(layer.weight.value.T, theirs, expected_std(scheme, 1.0),
                             f"--init {scheme}, the last Linear")


def scheme_arch(scheme: str, activation: str = "tanh") -> Architecture:
    return Architecture((12, 7, 5, 3), activation, init=scheme,
                        init_std=0.3 if scheme == "normal" else None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_the_torch_twin_holds_the_scratch_draw(scheme: str, dtype: str) -> None:
    twins = build_twins(scheme_arch(scheme), seed=3, dtype=dtype)
    ours, theirs = scratch_state_dict(twins.scratch), torch_state_dict(twins.torch)
    assert ours.keys() == theirs.keys()
    different = [name for name in ours if not np.array_equal(ours[name], theirs[name])]
    assert not different, f"--init {scheme}: {different} differ between the twins"
    default = scratch_state_dict(scheme_arch("torch").build_scratch(seed=3, dtype=dtype))
    assert not np.array_equal(ours["0.weight"], default["0.weight"]), "the scheme drew nothing"


@pytest.mark.parametrize("scheme", ["torch", *SCHEMES])
def test_one_seed_one_draw(scheme: str) -> None:
    """The same seed the same weights; float32 holds float64's draw rounded; another seed draws
    others (but zeros)."""
    def first_weight(seed: int, dtype: str) -> np.ndarray:
        return scheme_arch(scheme).build_scratch(seed=seed, dtype=dtype)[0].weight.value

    assert np.array_equal(first_weight(4, "float64"), first_weight(4, "float64"))
    assert np.array_equal(first_weight(4, "float32"), first_weight(4, "float64").astype(np.float32))
    assert np.array_equal(first_weight(4, "float64"), first_weight(5, "float64")) == (
        scheme == "zeros")


def neuron_spread(weight: np.ndarray) -> float:
    """The largest difference between two neurons' incoming weights (torch's layout: a neuron
    is a row), relative to the largest weight."""
    return float(np.ptp(weight, axis=0).max() / np.abs(weight).max())


def test_zero_init_keeps_every_neurons_weights_identical(data_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """Sigmoid(0) = 1/2: the last layer learns, the gradient it sends back is the same for every
    neuron of a layer, and so the neurons move alike and stay identical. Identical in exact
    arithmetic; a BLAS product may sum one output column in another order than the next (its
    kernel takes the last columns apart), so in float64 they agree to rounding (measured: 0 and
    8e-16 relative after an epoch of the bundled sample; float32 4e-7), not bit for bit."""
    status, _, err = train(data_dir, tmp_path, "--backend", "both", "--init", "zeros",
                           "--activation", "sigmoid", "--arch", "64-16-8-10", "--dtype",
                           "float64", capsys=capsys)
    assert status == 0, err
    for twin, suffix in (("scratch", "npz"), ("torch", "pt")):
        state = checkpoint.read(tmp_path / "run" / twin / f"checkpoint.{suffix}").state
        for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
            assert state[name].any(), f"{twin} {name} never moved from 0"
            spread = neuron_spread(state[name])
            assert spread <= 1e-12, (f"{twin} {name}: two neurons differ by {spread:.1e} of the "
                                     "largest weight (float64, rounding allows 1e-12)")


def test_init_goes_into_the_checkpoint_evaluate_and_resume(data_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    status, _, err = train(data_dir, tmp_path, "--backend", "both", "--init", "normal",
                           "--init-std", "0.02", "--epochs", "1", "--no-insight", capsys=capsys)
    assert status == 0, err
    run = tmp_path / "run"
    meta = checkpoint.read(run / "torch" / "checkpoint.pt").meta
    assert (meta["init"], meta["init_std"]) == ("normal", 0.02)
    assert Architecture.from_meta(meta) == Architecture(
        tuple(int(width) for width in ARCH.split("-")), "relu", init="normal", init_std=0.02)
    assert cli.main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert checkpoint.read(run / "scratch" / "checkpoint.npz").meta["init"] == "normal"
    assert cli.main(["evaluate", "--checkpoint", str(run / "scratch" / "checkpoint.npz"),
                     "--backend", "torch"]) == 0


@pytest.mark.parametrize("command", ["train", "parity"])
@pytest.mark.parametrize(("flags", "says"), [
    (["--init", "normal", "--init-std", "-1"], "--init-std -1.0: must be a positive number"),
    (["--init", "normal", "--init-std", "0"], "--init-std 0.0: must be a positive number"),
    (["--init", "normal", "--init-std", "nan"], "--init-std nan: must be a positive number"),
    (["--init-std", "0.1"], "--init-std 0.1: the std of --init normal, not of --init torch"),
    (["--init", "xavier", "--init-std", "0.1"], "not of --init xavier"),
    (["--init", "bogus"], "--init 'bogus': choose from torch, zeros, normal, xavier, kaiming")])
def test_a_bad_init_is_one_line_before_any_work(command: str, flags: list[str], says: str,
                                                data_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    logdir = tmp_path / "runs"
    extra = ["--data-dir", str(data_dir), "--logdir", str(logdir)] if command == "train" else []
    assert cli.main([command, "--arch", ARCH, *extra, *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --init") and says in err, err
    assert not logdir.exists(), "a refused run left a folder"
