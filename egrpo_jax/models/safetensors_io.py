"""Minimal safetensors reader / writer in NumPy (memory-mapped reads, bf16 via ml_dtypes).

Own implementation of the (tiny) format so bf16 tensors and lazy per-tensor reads work without
torch: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
then the raw bytes.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping

import ml_dtypes
import numpy as np

_DTYPES = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_NAMES = {v: k for k, v in _DTYPES.items()}


class SafetensorsFile:
    """Lazy view of one .safetensors file: `names()`, `shape(name)`, `get(name)`."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: file not found") from None
        except (struct.error, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a safetensors file ({e})") from None
        if not isinstance(header, dict):
            raise ValueError(f"{path}: not a safetensors file (the header is not a JSON object)")
        self.metadata = header.pop("__metadata__", {}) or {}
        self.header = header
        self._start = 8 + n
        self._mm: np.memmap | None = None
        size = os.path.getsize(path)
        for name, info in header.items():  # a truncated download fails here, naming the tensor
            try:
                a, b = (int(x) for x in info["data_offsets"])
                dt, shape = _DTYPES.get(info["dtype"]), [int(d) for d in info["shape"]]
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{path}: tensor {name}: malformed header entry {str(info)[:80]}") from None
            if dt is not None and b - a != dt.itemsize * int(np.prod(shape)):
                raise ValueError(f"{path}: tensor {name}: {b - a} bytes for shape {shape} {info['dtype']}")
            if not 0 <= a <= b or self._start + b > size:
                raise ValueError(f"{path}: tensor {name} ends at byte {self._start + b} but the file has {size} "
                                 "bytes (truncated?)")

    def names(self) -> list[str]:
        return list(self.header)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.header[name]["shape"])

    def get(self, name: str) -> np.ndarray:
        info = self.header[name]
        dt = _DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError(f"{self.path}: tensor {name} has unsupported dtype {info['dtype']}")
        if self._mm is None:
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        a, b = info["data_offsets"]
        raw = self._mm[self._start + a : self._start + b]
        return raw.view(dt).reshape(info["shape"])


def save_file(tensors: Mapping[str, np.ndarray], path: str, metadata: Mapping[str, str] | None = None) -> None:
    """Write `tensors` (C-contiguous NumPy arrays) to `path` in safetensors format."""
    header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    arrays = []
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        if arr.dtype not in _NAMES:
            raise ValueError(f"{path}: tensor {name}: dtype {arr.dtype} cannot be written to safetensors")
        header[name] = {"dtype": _NAMES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
        arrays.append(arr)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the format asks for an 8-byte aligned data section
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for arr in arrays:
            f.write(arr.tobytes())
    os.replace(tmp, path)
