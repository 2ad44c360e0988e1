"""Read a PyTorch checkpoint (``torch.save`` of a state dict) into NumPy arrays, without torch.

A ``.pth`` file is a pickle whose tensors point at raw storages. A general ``pickle.load`` of
it would execute whatever callables the file names, so this reader uses a restricted unpickler:
it resolves only the handful of globals a state dict needs (an ``OrderedDict``, the tensor
rebuild functions and the typed storage classes) and refuses everything else.

Both layouts ``torch.save`` has produced are supported:

* the zip layout (PyTorch ≥ 1.6): ``<name>/data.pkl`` plus one raw file per storage under
  ``<name>/data/<key>``;
* the legacy layout (PyTorch < 1.6): five consecutive pickles (magic number, protocol version,
  system info, the object, the storage keys) followed by each storage as an int64 element count
  and its raw little-endian bytes.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["CheckpointError", "load_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": None,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
    """The file is not a state-dict checkpoint this reader accepts; the message names it."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        dtype = _STORAGE_DTYPES[self.name]
        if dtype is None:
            raise CheckpointError(f"storage type {self.name} is not supported")
        return np.dtype(dtype)


@dataclass
class _TensorRef:
    """A tensor whose storage is read after the object pickle (legacy layout)."""

    key: str
    dtype: np.dtype
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    key, dtype = storage
    return _TensorRef(key, dtype, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_ignored):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream: BinaryIO, source: Path):
        super().__init__(stream)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self.source}: refusing to load global {module}.{name}; only state dicts of tensors are accepted"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise CheckpointError(f"{self.source}: unexpected persistent id {pid!r}")
        return str(pid[2]), pid[1].dtype


def _materialise(obj: Any, storages: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, _TensorRef):
        flat = storages[obj.key]
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[obj.offset :], shape=obj.shape, strides=tuple(s * itemsize for s in obj.stride), writeable=False
        )
        return np.array(view, copy=True)
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v, storages)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, storages) for v in obj)
    return obj


def _collect_refs(obj: Any, refs: dict[str, np.dtype]) -> None:
    if isinstance(obj, _TensorRef):
        refs[obj.key] = obj.dtype
    elif isinstance(obj, dict):
        for value in obj.values():
            _collect_refs(value, refs)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _collect_refs(value, refs)


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickle_name = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pickle_name is None:
            raise CheckpointError(f"{path}: zip archive without data.pkl; not a torch checkpoint")
        prefix = pickle_name[: -len("data.pkl")]
        obj = _RestrictedUnpickler(io.BytesIO(archive.read(pickle_name)), path).load()
        refs: dict[str, np.dtype] = {}
        _collect_refs(obj, refs)
        storages = {
            key: np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype=dtype.newbyteorder("<"))
            for key, dtype in refs.items()
        }
    return _materialise(obj, storages)


def _load_legacy(path: Path) -> Any:
    with open(path, "rb") as stream:

        def next_pickle() -> Any:
            return _RestrictedUnpickler(stream, path).load()

        if next_pickle() != _LEGACY_MAGIC:
            raise CheckpointError(f"{path}: wrong magic number; not a torch checkpoint")
        next_pickle()  # protocol version
        system = next_pickle()
        if isinstance(system, dict) and not system.get("little_endian", True):
            raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
        obj = next_pickle()
        keys = next_pickle()
        refs: dict[str, np.dtype] = {}
        _collect_refs(obj, refs)
        storages = {}
        for key in keys:
            header = stream.read(8)
            if len(header) != 8:
                raise CheckpointError(f"{path}: truncated before storage {key}")
            (count,) = struct.unpack("<q", header)
            dtype = refs.get(str(key), np.dtype(np.uint8)).newbyteorder("<")
            data = stream.read(count * dtype.itemsize)
            if len(data) != count * dtype.itemsize:
                raise CheckpointError(
                    f"{path}: storage {key} truncated ({len(data)} of {count * dtype.itemsize} bytes)"
                )
            storages[str(key)] = np.frombuffer(data, dtype=dtype)
    return _materialise(obj, storages)


def load_state_dict(path: str | Path) -> collections.OrderedDict[str, np.ndarray]:
    """Load a PyTorch state dict as ``{name: ndarray}`` without importing torch.

    Args:
        path: a ``.pth`` / ``.pt`` file written by ``torch.save(model.state_dict(), path)``.
    Returns:
        OrderedDict from parameter / buffer name to a C-contiguous NumPy array with the tensor's
        shape (PyTorch layout, e.g. conv kernels are (out, in, height, width)) and dtype.
    Raises:
        FileNotFoundError: `path` does not exist.
        CheckpointError: not a torch checkpoint, truncated, or it names a global outside the
            allow-list (anything but tensors in an OrderedDict).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
    except (pickle.UnpicklingError, EOFError, struct.error) as error:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from error
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state
