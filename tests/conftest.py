"""Shared fixtures: generated miniature copies of the real dataset layouts."""

from __future__ import annotations

import collections
import gzip
import io
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    """Write `array` (uint8) as a gzip IDX file, the Fashion-MNIST format."""
    magic = magic if magic is not None else 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return path


def make_fashion_mnist(directory: Path, n_train: int = 30, n_test: int = 20, seed: int = 0) -> Path:
    """Four IDX files with the official names, 28×28 images, labels cycling over 10 classes."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return directory


TINY_WNIDS = ("n01443537", "n01629819", "n02123045")


def make_tiny_imagenet(root: Path, **kwargs) -> Path:
    """The package's miniature Tiny ImageNet (three classes unless told otherwise)."""
    from cbir.testing import make_tiny_imagenet_fixture

    return make_tiny_imagenet_fixture(root, **kwargs)


@pytest.fixture
def fashion_mnist_dir(tmp_path: Path) -> Path:
    return make_fashion_mnist(tmp_path / "fashion-mnist")


@pytest.fixture
def tiny_imagenet_dir(tmp_path: Path) -> Path:
    return make_tiny_imagenet(tmp_path / "tiny-imagenet-200")


@pytest.fixture
def isolated_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point cbir.config's data, figures and reports directories (and env vars) at tmp_path."""
    from cbir import config

    for attribute, variable in (
        ("DATA_DIR", "CBIR_DATA_DIR"),
        ("FIGURES_DIR", "CBIR_FIGURES_DIR"),
        ("REPORTS_DIR", "CBIR_REPORTS_DIR"),
    ):
        path = tmp_path / attribute.lower()
        monkeypatch.setattr(config, attribute, path)
        monkeypatch.setenv(variable, str(path))
    monkeypatch.setattr(config, "RAW_DATA_DIR", config.DATA_DIR / "raw")
    monkeypatch.setattr(config, "CACHE_DIR", config.DATA_DIR / "cache")
    return tmp_path


PHOTO_SOURCES = {"cat": "chelsea", "coffee": "coffee", "astronaut": "astronaut", "rocket": "rocket"}
"""Class → scikit-image sample photograph of `photo_tree`."""


@pytest.fixture(scope="module")
def photo_tree(tmp_path_factory) -> Path:
    """A class-per-folder tree: 4 classes × 4 views (crops and flips of one photograph per class), 64 × 64 JPEGs."""
    import skimage.data
    from PIL import Image

    root = tmp_path_factory.mktemp("tree")
    for label, name in PHOTO_SOURCES.items():
        photo = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        width, height = photo.size
        for view in range(4):
            box = (view * width // 16, view * height // 16, width - view * width // 16, height - view * height // 16)
            image = photo.crop(box).resize((64, 64))
            if view % 2:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            (root / label).mkdir(exist_ok=True)
            image.save(root / label / f"{label}{view}.jpg", quality=95)
    return root


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray session (2 CPUs, no dashboard) for every test that needs it: Ray starts in seconds, not
    milliseconds. Shut down after the last test."""
    pytest.importorskip("ray.data", reason="the [scale] extra (ray[data]) is not installed")
    from cbir.scale.ray_extract import ray_session

    with ray_session(workers=2) as ray:
        yield ray


# ------------------------------------------------------------------ fake PyTorch checkpoints (no torch needed)


@pytest.fixture
def fake_torch(monkeypatch):
    """Modules named like torch's, so that pickle records the same globals torch.save does."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("FloatStorage", "LongStorage"):
        storage_class = type(name, (), {"__module__": "torch", "__qualname__": name})
        setattr(torch, name, storage_class)
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class FakeStorage:
    """A storage to pickle: its key, data (NumPy) and storage class (e.g. ``torch.FloatStorage``)."""

    def __init__(self, key, data, storage_class):
        self.key, self.data, self.storage_class = key, data, storage_class


class FakeTensor:
    """A tensor to pickle as torch does: a view (offset, shape, stride) of a `FakeStorage`."""

    def __init__(self, storage, offset, shape, stride):
        self.args = (storage, offset, shape, stride)

    def __reduce__(self):
        storage, offset, shape, stride = self.args
        return (
            sys.modules["torch._utils"]._rebuild_tensor_v2,
            (storage, offset, tuple(shape), tuple(stride), False, collections.OrderedDict()),
        )


class _CheckpointPickler(pickle.Pickler):
    def __init__(self, stream, zip_layout):
        super().__init__(stream, protocol=2)
        self.zip_layout = zip_layout

    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            common = ("storage", obj.storage_class, obj.key, "cpu", obj.data.size)
            return common if self.zip_layout else common + (None,)
        return None


def write_legacy_checkpoint(path, state, storages):
    """`state` (holding `FakeTensor`s) in torch.save's legacy layout (PyTorch < 1.6)."""
    with open(path, "wb") as stream:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, stream, protocol=2)
        _CheckpointPickler(stream, zip_layout=False).dump(state)
        pickle.dump([s.key for s in storages], stream, protocol=2)
        for storage in storages:
            stream.write(np.int64(storage.data.size).tobytes())
            stream.write(storage.data.astype(storage.data.dtype.newbyteorder("<")).tobytes())


def write_zip_checkpoint(path, state, storages):
    """`state` (holding `FakeTensor`s) in torch.save's zip layout (PyTorch >= 1.6)."""
    buffer = io.BytesIO()
    _CheckpointPickler(buffer, zip_layout=True).dump(state)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        for storage in storages:
            archive.writestr(f"archive/data/{storage.key}", storage.data.tobytes())
