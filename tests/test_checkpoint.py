"""Checkpoints: both twins save one state dict (PyTorch's names and layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from compare.harness.arch import Architecture
from compare.harness.twins import build_twins, scratch_state_dict
from compare.training import checkpoint

ARCH = Architecture.parse("6-4-3", "tanh")
META = {"arch": ARCH.spec, "activation": ARCH.activation, "dtype": "float64"}


def test_both_twins_save_the_same_names_and_shapes(tmp_path: Path) -> None:
    scratch_model, torch_model = build_twins(ARCH, seed=1, dtype="float64")
    checkpoint.save_npz(tmp_path / "c.npz", scratch_state_dict(scratch_model), META)
    checkpoint.save_pt(tmp_path / "c.pt", torch_model.state_dict(), META)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as archive:
        npz = {key: archive[key] for key in archive.files if key != "meta"}
    pt = torch.load(tmp_path / "c.pt", weights_only=True)["state_dict"]
    assert list(npz) == list(pt) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for name, value in pt.items():
        assert np.array_equal(npz[name], value.numpy()), name
    assert npz["0.weight"].shape == (4, 6), "PyTorch's (out, in) layout"


@pytest.mark.parametrize(("change", "message"), [
    (lambda state: state.pop("2.bias"), r"2\.bias should have shape \(3,\) for 6-4-3, found "
                                        r"missing"),
    (lambda state: state.update({"0.weight": np.zeros((6, 4))}),
     r"0\.weight should have shape \(4, 6\) for 6-4-3, found shape \(6, 4\)"),
    (lambda state: state.update({"4.weight": np.zeros((3, 3))}),
     r"parameters \['4\.weight'\] do not belong to 6-4-3"),
])
def test_a_state_that_does_not_fit_the_network_is_named(tmp_path: Path, change, message: str
                                                        ) -> None:
    state = scratch_state_dict(ARCH.build_scratch(seed=0, dtype="float64"))
    change(state)
    checkpoint.save_npz(tmp_path / "c.npz", state, META)
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load(tmp_path / "c.npz")
