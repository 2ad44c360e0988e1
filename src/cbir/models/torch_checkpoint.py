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

Nothing in the file is trusted: before a byte of a storage is read, its declared element count
is checked against the bytes the archive holds, and every tensor's offset, sizes and strides
against its storage, so a crafted file raises `CheckpointError` instead of reading out of
bounds.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Iterator
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


@dataclass(frozen=True)
class _StorageRef:
    """A storage named by the object pickle: its key, element type and declared element count."""

    key: str
    dtype: np.dtype
    numel: int


@dataclass
class _TensorRef:
    """A tensor as the pickle describes it; its storage is read afterwards."""

    storage: _StorageRef
    offset: Any
    shape: Any
    stride: Any


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    if not isinstance(storage, _StorageRef):
        raise CheckpointError(f"a tensor's storage is {type(storage).__name__}, not a storage reference")
    return _TensorRef(storage, storage_offset, size, stride)


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
        if not (
            isinstance(pid, tuple)
            and len(pid) in (5, 6)
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
            and _is_count(pid[4])
        ):
            raise CheckpointError(f"{self.source}: unexpected persistent id {pid!r}")
        if len(pid) == 6 and pid[5] is not None:
            raise CheckpointError(f"{self.source}: storage {pid[2]} is a view of another storage; not supported")
        return _StorageRef(str(pid[2]), pid[1].dtype, pid[4])


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensors(obj: Any, name: str = "") -> Iterator[tuple[str, _TensorRef]]:
    """Every tensor in the unpickled object, with its name (``"layer.weight"``, ``"[0]"``...)."""
    if isinstance(obj, _TensorRef):
        yield name or "<root>", obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, f"{name}.{key}" if name else str(key))
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from _tensors(value, f"{name}[{index}]")


def _storage_refs(obj: Any, path: Path) -> dict[str, _StorageRef]:
    """The storages the tensors use, by key, once each checked against the tensors' extents."""
    storages: dict[str, _StorageRef] = {}
    for name, tensor in _tensors(obj):
        storage = storages.setdefault(tensor.storage.key, tensor.storage)
        if storage.dtype.itemsize * storage.numel != tensor.storage.dtype.itemsize * tensor.storage.numel:
            raise CheckpointError(
                f"{path}: tensor {name!r}: storage {storage.key} is declared with two different sizes "
                f"({storage.numel} × {storage.dtype} and {tensor.storage.numel} × {tensor.storage.dtype})"
            )
        _check_extent(path, name, tensor)
    return storages


def _check_extent(path: Path, name: str, tensor: _TensorRef) -> None:
    """Raise unless offset, sizes and strides are non-negative integers that stay inside the storage."""
    shape, stride, offset = tensor.shape, tensor.stride, tensor.offset
    if not (
        isinstance(shape, (tuple, list))
        and isinstance(stride, (tuple, list))
        and len(shape) == len(stride)
        and all(map(_is_count, (*shape, *stride, offset)))
    ):
        raise CheckpointError(
            f"{path}: tensor {name!r} has an invalid layout: size {shape!r}, stride {stride!r}, offset {offset!r}"
            " (expected non-negative integers, as many strides as sizes)"
        )
    if 0 in shape:
        return  # no element is read
    last = offset + sum((size - 1) * step for size, step in zip(shape, stride))  # Python ints: no overflow
    if last >= tensor.storage.numel:
        raise CheckpointError(
            f"{path}: tensor {name!r} (size {tuple(shape)}, stride {tuple(stride)}, offset {offset}) reaches "
            f"element {last} of storage {tensor.storage.key}, which holds {tensor.storage.numel} elements"
        )


def _materialise(obj: Any, storages: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, _TensorRef):
        flat = storages[obj.storage.key]
        if flat.dtype != obj.storage.dtype:
            flat = flat.view(obj.storage.dtype.newbyteorder("<"))
        shape = tuple(obj.shape)
        if 0 in shape:
            return np.empty(shape, dtype=flat.dtype)
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[obj.offset :], shape=shape, strides=tuple(s * itemsize for s in obj.stride), writeable=False
        )
        return np.array(view, copy=True)
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v, storages)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, storages) for v in obj)
    return obj


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickle_name = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pickle_name is None:
            raise CheckpointError(f"{path}: zip archive without data.pkl; not a torch checkpoint")
        prefix = pickle_name[: -len("data.pkl")]
        obj = _RestrictedUnpickler(io.BytesIO(archive.read(pickle_name)), path).load()
        storages = {}
        for key, ref in _storage_refs(obj, path).items():
            member = f"{prefix}data/{key}"
            try:
                size = archive.getinfo(member).file_size
            except KeyError:
                raise CheckpointError(f"{path}: storage {key} is missing from the archive ({member})") from None
            expected = ref.numel * ref.dtype.itemsize
            if size != expected:
                raise CheckpointError(
                    f"{path}: storage {key} holds {size} bytes in the archive; its tensors declare "
                    f"{ref.numel} × {ref.dtype} = {expected} bytes"
                )
            storages[key] = np.frombuffer(archive.read(member), dtype=ref.dtype.newbyteorder("<"))
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
        if not isinstance(keys, (list, tuple)):
            raise CheckpointError(f"{path}: expected the list of storage keys, got {type(keys).__name__}")
        refs = _storage_refs(obj, path)
        file_size = os.fstat(stream.fileno()).st_size
        storages = {}
        for key in map(str, keys):
            header = stream.read(8)
            if len(header) != 8:
                raise CheckpointError(f"{path}: truncated before storage {key}")
            (count,) = struct.unpack("<q", header)
            ref = refs.get(key)
            if ref is None:  # its element size, hence where the next storage starts, is unknown
                raise CheckpointError(f"{path}: storage {key} is listed but no tensor uses it")
            if count != ref.numel:
                raise CheckpointError(
                    f"{path}: storage {key} holds {count} elements in the file; its tensors declare {ref.numel}"
                )
            size = count * ref.dtype.itemsize
            data = stream.read(min(size, max(file_size - stream.tell(), 0)))
            if len(data) != size:
                raise CheckpointError(f"{path}: storage {key} truncated ({len(data)} of {size} bytes)")
            storages[key] = np.frombuffer(data, dtype=ref.dtype.newbyteorder("<"))
        missing = sorted(set(refs) - set(storages))
        if missing:
            raise CheckpointError(f"{path}: storage(s) {missing} are used by tensors but not in the file")
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
        CheckpointError: not a torch checkpoint, truncated, it names a global outside the
            allow-list (anything but tensors in an OrderedDict), or a tensor's size, stride or
            offset reaches outside its storage, or a storage's size disagrees with the archive
            (the message names the tensor or storage and both sizes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
    except CheckpointError as error:
        if str(error).startswith(f"{path}: "):
            raise
        raise CheckpointError(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, struct.error, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from error
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state
