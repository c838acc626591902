"""Arrow constants built straight from buffers, without importing pandas.

``pa.scalar(x)``, ``pa.array([...])`` and every ``pyarrow.compute`` call given a plain Python value
first ask pyarrow's pandas shim whether the value is "array-like", and that question imports pandas
(about 0.5 s of CPU, in every process, holding the GIL). The log readers and the summary only need
a handful of constants, so they build them here from numpy buffers and pass Arrow objects.
``Array.to_numpy`` imports pandas too (on the C++ side), so :func:`to_numpy` reads the buffers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

__all__ = ["scalar", "string_array", "to_numpy"]

_NUMPY = {
    pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
    pa.float32(): np.float32, pa.float64(): np.float64,
}


def string_array(values: Sequence[str]) -> pa.Array:
    """A non-null ``string`` array of ``values``."""
    data = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    offsets[1:] = np.cumsum([len(d) for d in data], dtype=np.int64)
    return pa.Array.from_buffers(
        pa.string(), len(data), [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(data))]
    )


def scalar(value: str | bool | int | float, typ: pa.DataType) -> pa.Scalar:
    """A valid scalar of ``typ`` (string, bool, an integer or float type, or a timestamp from an int)."""
    if pa.types.is_string(typ):
        return string_array([str(value)])[0]
    if pa.types.is_boolean(typ):
        buf = pa.py_buffer(bytes([1 if value else 0]))
        return pa.Array.from_buffers(typ, 1, [None, buf])[0]
    if pa.types.is_timestamp(typ):
        raw = np.array([value], dtype=np.int64)
    elif typ in _NUMPY:
        raw = np.array([value], dtype=_NUMPY[typ])
    else:
        raise TypeError(f"no constant builder for {typ}")
    return pa.Array.from_buffers(typ, 1, [None, pa.py_buffer(raw.tobytes())])[0]


def _bits(buf: pa.Buffer, offset: int, n: int) -> np.ndarray:
    packed = np.frombuffer(buf, dtype=np.uint8, count=(offset + n + 7) // 8)
    return np.unpackbits(packed, bitorder="little", count=offset + n)[offset:].view(np.bool_)


def to_numpy(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numpy copy or view of a boolean, integer or float array, like ``arr.to_numpy(zero_copy_only=False)``.

    Nulls in a float array become NaN. Other arrays with nulls (and other types) go through pyarrow.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    typ = arr.type
    n = len(arr)
    floating = pa.types.is_floating(typ)
    if n == 0 or (arr.null_count and not floating) or not (pa.types.is_boolean(typ) or typ in _NUMPY):
        return arr.to_numpy(zero_copy_only=False)
    validity, data = arr.buffers()[:2]
    if pa.types.is_boolean(typ):
        return _bits(data, arr.offset, n)
    dtype = np.dtype(_NUMPY[typ])
    out = np.frombuffer(data, dtype=dtype, count=n, offset=arr.offset * dtype.itemsize)
    if arr.null_count:
        out = np.where(_bits(validity, arr.offset, n), out, np.nan)
    return out
