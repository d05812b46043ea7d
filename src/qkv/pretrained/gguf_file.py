"""A lean GGUF reader: the header, the metadata and the tensor table, and each tensor's bytes on demand.

GGUF (llama.cpp's format, little-endian, versions 2 and 3) is a header, ``kv_count`` metadata entries
(key, type, value), ``tensor_count`` tensor descriptions (name, dimensions innermost first, type, offset),
then the tensor data, aligned to ``general.alignment`` (32 bytes by default).

Why not ``gguf.GGUFReader``: it builds a NumPy view for every part of every field, slow for SmolLM2's 49,152
tokens and 48,900 merges (BENCHMARKS.md, pretrained models: load). This reader walks the metadata once with
:func:`struct.unpack_from` and reads a tensor's bytes only when asked, into memory the caller owns, so the file
is never mapped and its pages never count against the process.

Every way a file can be short or malformed is a :class:`~qkv.data.registry.PretrainedError` that
names the file and says "truncated or damaged".

Dequantisation of the common types (F32, F16, BF16, Q4_0, Q4_1, Q8_0) is vectorised PyTorch
(:func:`dequantise`); any other type the ``gguf`` package knows goes through ``gguf.quants``.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qkv.data.registry import PretrainedError
from qkv.shapes import Tensor

__all__ = ["BLOCK_TYPES", "MAX_NESTING", "GGUFFile", "TensorInfo", "dequantise", "type_name"]

_MAGIC = b"GGUF"
_VERSIONS = (2, 3)
_DEFAULT_ALIGNMENT = 32

# Metadata value types: number → struct format (None for string, array).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {
    0: "<u1",
    1: "<i1",
    2: "<u2",
    3: "<i2",
    4: "<u4",
    5: "<i4",
    6: "<f4",
    7: "<u1",
    10: "<u8",
    11: "<i8",
    12: "<f8",
}
_STRING, _ARRAY = 8, 9

# Tensor types qkv dequantises itself: name, values per block, bytes per block.
BLOCK_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    8: ("Q8_0", 32, 34),
    30: ("BF16", 1, 2),
}


def _other_types() -> dict[int, tuple[str, int, int]]:
    """Every tensor type the installed ``gguf`` package knows: number → (name, block values, block bytes)."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    return {int(t): (t.name, *GGML_QUANT_SIZES[t]) for t in GGMLQuantizationType if t in GGML_QUANT_SIZES}


def type_name(number: int) -> str:
    known = BLOCK_TYPES.get(number) or _other_types().get(number)
    return known[0] if known else f"type {number}"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the file. ``shape`` is outermost first, as PyTorch lays it out: ``(rows, columns)`` for a
    matrix, i.e. ``(out, in)`` for a linear layer (GGUF lists the dimensions the other way round)."""

    name: str
    shape: tuple[int, ...]
    type_number: int
    type_name: str
    offset: int  # absolute, in the file
    nbytes: int

    @property
    def rows(self) -> int:
        return int(np.prod(self.shape[:-1], dtype=np.int64)) if len(self.shape) > 1 else 1


#: How deeply metadata arrays may nest (arrays of arrays of …). Real files nest one or two deep; each level is a
#: Python call, so a damaged or hostile file nesting thousands deep would otherwise end in a RecursionError.
MAX_NESTING = 8


class _TooDeep(Exception):
    """A metadata array nests deeper than :data:`MAX_NESTING` (turned into a PretrainedError naming the file)."""


class _Cursor:
    """Sequential little-endian reads from a buffer; running past its end raises :class:`IndexError`."""

    def __init__(self, buffer: mmap.mmap) -> None:
        self.buffer = buffer
        self.size = len(buffer)
        self.at = 0

    def take(self, fmt: str, size: int) -> Any:
        if self.at + size > self.size:
            raise IndexError(self.at + size)
        (value,) = struct.unpack_from(fmt, self.buffer, self.at)
        self.at += size
        return value

    def u32(self) -> int:
        return int(self.take("<I", 4))

    def u64(self) -> int:
        return int(self.take("<Q", 8))

    def string(self) -> str:
        length = self.u64()
        end = self.at + length
        if end > self.size:
            raise IndexError(end)
        text = self.buffer[self.at : end].decode("utf-8")
        self.at = end
        return text

    def value(self, kind: int, depth: int = 0) -> Any:
        """One metadata value of type ``kind``; ``depth`` counts the arrays it lies in."""
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            if depth >= MAX_NESTING:
                raise _TooDeep()
            item_kind, count = self.u32(), self.u64()
            if item_kind == _STRING:
                return [self.string() for _ in range(count)]
            if item_kind in _NUMPY:
                dtype = np.dtype(_NUMPY[item_kind])
                end = self.at + count * dtype.itemsize
                if end > self.size:
                    raise IndexError(end)
                array = np.frombuffer(self.buffer, dtype=dtype, count=count, offset=self.at).copy()
                self.at = end
                return array.astype(bool) if item_kind == 7 else array
            if item_kind == _ARRAY:
                return [self.value(_ARRAY, depth + 1) for _ in range(count)]
            raise ValueError(f"unknown metadata array type {item_kind}")
        fmt = _SCALARS.get(kind)
        if fmt is None:
            raise ValueError(f"unknown metadata value type {kind}")
        return self.take(fmt, struct.calcsize(fmt))


class GGUFFile:
    """The metadata and tensor table of a GGUF file; :meth:`read` fetches one tensor's bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        try:
            with open(path, "rb") as file:
                if self.size < 24:
                    raise IndexError(24)
                with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
                    self._parse(_Cursor(buffer))
        except PretrainedError:
            raise
        except _TooDeep:
            raise PretrainedError(
                f"cannot read GGUF file {path}: its metadata nests arrays more than {MAX_NESTING} deep "
                "(a damaged file?)"
            ) from None
        except (IndexError, struct.error):
            raise PretrainedError(
                f"cannot read GGUF file {path}: it ends inside its header (a truncated or damaged file?)"
            ) from None
        except (ValueError, UnicodeDecodeError, OverflowError, MemoryError) as error:
            raise PretrainedError(f"cannot read GGUF file {path}: {error} (a truncated or damaged file?)") from None

    def _parse(self, cursor: _Cursor) -> None:
        path = self.path
        if bytes(cursor.buffer[:4]) != _MAGIC:
            raise PretrainedError(f"{path} is not a GGUF file (it does not start with b'GGUF')")
        cursor.at = 4
        self.version = cursor.u32()
        if self.version not in _VERSIONS:
            raise PretrainedError(
                f"{path} is GGUF version {self.version}; qkv reads versions {', '.join(map(str, _VERSIONS))}"
            )
        tensor_count, kv_count = cursor.u64(), cursor.u64()
        if tensor_count > self.size or kv_count > self.size:  # each takes bytes: a damaged count
            raise IndexError(self.size + 1)
        self.metadata: dict[str, Any] = {}
        for _ in range(kv_count):
            key = cursor.string()
            self.metadata[key] = cursor.value(cursor.u32())
        entries = []
        for _ in range(tensor_count):
            name = cursor.string()
            dims = [cursor.u64() for _ in range(cursor.u32())]
            entries.append((name, dims, cursor.u32(), cursor.u64()))
        alignment = self.metadata.get("general.alignment", _DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment < 1:
            raise PretrainedError(f"GGUF file {path}: general.alignment must be a positive integer, got {alignment!r}")
        data_start = -(-cursor.at // alignment) * alignment
        types: dict[int, tuple[str, int, int]] | None = None
        self.tensors: dict[str, TensorInfo] = {}
        for name, dims, number, offset in entries:
            known = BLOCK_TYPES.get(number)
            if known is None:
                types = _other_types() if types is None else types
                known = types.get(number)
            if known is None:
                readable = ", ".join(name for name, _, _ in BLOCK_TYPES.values())
                raise PretrainedError(
                    f"{path} uses GGUF tensor type {number}, which this gguf package does not know; "
                    f"qkv reads {readable} and the other types of the gguf package"
                )
            kind, block_values, block_bytes = known
            count = int(np.prod(dims, dtype=np.int64)) if dims else 1
            if count % block_values or (dims and dims[0] % block_values):
                raise PretrainedError(
                    f"GGUF file {path}: tensor {name} of {dims} values does not split into {kind} blocks "
                    f"of {block_values}"
                )
            info = TensorInfo(
                name=name,
                shape=tuple(int(n) for n in reversed(dims)),
                type_number=number,
                type_name=kind,
                offset=data_start + offset,
                nbytes=count // block_values * block_bytes,
            )
            if info.offset + info.nbytes > self.size:
                raise PretrainedError(
                    f"GGUF file {path} is truncated: tensor {name} needs bytes up to "
                    f"{info.offset + info.nbytes:,}, the file has {self.size:,}"
                )
            self.tensors[name] = info

    def read(self, info: TensorInfo) -> np.ndarray:
        """The tensor's bytes ``(rows, bytes per row)``, uint8, in new memory (writable, owned by the caller)."""
        data = bytearray(info.nbytes)
        with open(self.path, "rb") as file:
            file.seek(info.offset)
            got = file.readinto(data)
        if got != info.nbytes:
            raise PretrainedError(f"GGUF file {self.path} is truncated: tensor {info.name} is cut short")
        return np.frombuffer(data, dtype=np.uint8).reshape(info.rows, -1)


# --------------------------------------------------------------------------------------------------------------
# Dequantisation: bytes → float tensor.


def _halves(blocks: Tensor, start: int) -> Tensor:
    """The float16 at bytes ``start, start+1`` of each block, as float32 ``(blocks, 1)``."""
    return blocks[:, start : start + 2].contiguous().view(torch.float16).float()


def _nibbles(packed: Tensor) -> Tensor:
    """llama.cpp's 4-bit block layout: byte ``j`` holds value ``j`` (low nibble) and ``j + 16`` (high)."""
    return torch.cat([packed & 15, packed >> 4], dim=1)  # (blocks, 32)


_CHUNK_VALUES = 1 << 22  # a lower-precision result is made this many values at a time (a 16 MB float32 buffer)


def dequantise(raw: np.ndarray, info: TensorInfo, dtype: torch.dtype = torch.float32) -> Tensor:
    """The tensor of ``raw`` (from :meth:`GGUFFile.read`) as ``dtype``, shaped ``info.shape``.

    Values are computed in float32 and rounded once to ``dtype``; a large tensor asked for in a smaller dtype is
    done in slices of rows, so that no float32 copy of all of it is ever held (SmolLM2's embedding: 113 MB)."""
    rows = raw.shape[0]
    if dtype != torch.float32 and raw.size and info.rows == rows and len(info.shape) == 2:
        step = max(1, _CHUNK_VALUES // info.shape[1])
        if rows > step:
            out = torch.empty(info.shape, dtype=dtype)
            for start in range(0, rows, step):
                part = raw[start : start + step]
                piece = TensorInfo(info.name, (part.shape[0], info.shape[1]), info.type_number, info.type_name, 0, 0)
                out[start : start + step] = _dequantise(part, piece)
            return out
    return _dequantise(raw, info).to(dtype)


def _dequantise(raw: np.ndarray, info: TensorInfo) -> Tensor:
    """float32 values of ``raw``, shaped ``info.shape``."""
    kind = info.type_name
    data = torch.from_numpy(raw).reshape(-1)
    if kind == "F32":
        values = data.view(torch.float32)
    elif kind == "F16":
        values = data.view(torch.float16)
    elif kind == "BF16":
        values = data.view(torch.bfloat16)
    elif kind == "Q8_0":
        blocks = data.view(-1, 34)
        values = blocks[:, 2:].view(torch.int8).float() * _halves(blocks, 0)  # (blocks, 32)
    elif kind == "Q4_0":
        blocks = data.view(-1, 18)
        values = (_nibbles(blocks[:, 2:]).float() - 8.0) * _halves(blocks, 0)
    elif kind == "Q4_1":
        blocks = data.view(-1, 20)
        values = torch.addcmul(_halves(blocks, 2), _nibbles(blocks[:, 4:]).float(), _halves(blocks, 0))
    else:
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize

        values = torch.from_numpy(np.asarray(dequantize(raw, GGMLQuantizationType(info.type_number)), np.float32))
    return values.reshape(info.shape).float()
