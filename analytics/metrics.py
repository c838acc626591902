"""The one definition of edgeproof's cache metrics.

- **Result classes** (:func:`classify`): every request is a ``hit``, a ``miss``, or *excluded* with a
  reason. Over GET/HEAD requests only: ``Hit`` and ``RefreshHit`` are hits; ``Miss`` and
  ``OriginShieldHit`` are misses (the POP did not have it). Everything else is excluded and counted by
  reason: other methods (``method``), ``Error`` (``error``), ``Redirect`` (``redirect``),
  ``LimitExceeded`` (``limit_exceeded``), ``CapacityExceeded`` (``capacity_exceeded``),
  ``LambdaGeneratedResponse``/``FunctionGeneratedResponse`` (``generated``), anything else or missing
  (``unknown``). The method is checked first: a ``POST`` that errored counts under ``method``.
  The method is matched case-insensitively, the result type exactly (after trimming spaces), as
  CloudFront writes them (AWS CloudFront Developer Guide, "Standard logging reference", section "Log
  file fields": ``x-edge-result-type``). :func:`classify_arrays` is the same rule over whole Arrow columns,
  returning codes into :data:`CLASS_NAMES` (one Python call per *distinct* value, not per row); a
  differential test holds it equal to :func:`classify` row by row.
- **Hit rate** (:func:`hit_rate`): hits / (hits + misses), ``None`` when there is no cacheable request.
  This is CloudWatch's CacheHitRate made exact.
- **Latency percentiles over logs** (:class:`LatencySketch`): a log-bucket histogram with relative
  accuracy 1 % (bucket ratio γ = 1.01/0.99, DDSketch-style), mergeable across files, processes and
  days by adding counts. Values are milliseconds; 0 ms (CloudFront logs ``0.000``) has its own bucket.
- **Exact percentiles over recorder rows** (:func:`exact_quantiles`).
(:class:`edgeproof.analytics.aggregate.LogAggregate` counts logs with these definitions and
:func:`edgeproof.analytics.summary.summarize` turns it into the summary JSON; at import this module
loads nothing of the package, so everything can build on it; :func:`classify_arrays` reads Arrow
buffers through ``edgeproof.analytics._arrow`` when called.)

Importing this module is cheap: numpy only (pyarrow is imported by :func:`classify_arrays` when called).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_QUANTILES",
    "EXCLUDED_REASONS",
    "HIT_TYPES",
    "MISS_TYPES",
    "LatencySketch",
    "classify",
    "classify_arrays",
    "exact_quantiles",
    "hit_rate",
    "quantile_label",
    "xcache_result",
]

HIT_TYPES: frozenset[str] = frozenset({"Hit", "RefreshHit"})
MISS_TYPES: frozenset[str] = frozenset({"Miss", "OriginShieldHit"})
CACHEABLE_METHODS: frozenset[str] = frozenset({"GET", "HEAD"})
_REASON_BY_TYPE: dict[str, str] = {
    "Error": "error",
    "Redirect": "redirect",
    "LimitExceeded": "limit_exceeded",
    "CapacityExceeded": "capacity_exceeded",
    "LambdaGeneratedResponse": "generated",
    "FunctionGeneratedResponse": "generated",
}
#: every excluded reason :func:`classify` can return, in display order
EXCLUDED_REASONS: tuple[str, ...] = (
    "method", "error", "redirect", "limit_exceeded", "capacity_exceeded", "generated", "unknown",
)
#: every class :func:`classify` can return; :func:`classify_arrays` returns indices into this tuple
CLASS_NAMES: tuple[str, ...] = ("hit", "miss", *EXCLUDED_REASONS)
#: the codes of :func:`classify_arrays` for a hit, a miss and a non-cacheable method
HIT, MISS, METHOD = 0, 1, CLASS_NAMES.index("method")
_CLASS_CODE = {name: i for i, name in enumerate(CLASS_NAMES)}
#: the percentiles every summary reports
DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)


def classify(result_type: str | None, method: str | None) -> str:
    """``"hit"``, ``"miss"`` or the excluded reason (see the module docstring)."""
    if (method or "").upper() not in CACHEABLE_METHODS:
        return "method"
    rt = (result_type or "").strip()
    if rt in HIT_TYPES:
        return "hit"
    if rt in MISS_TYPES:
        return "miss"
    return _REASON_BY_TYPE.get(rt, "unknown")


def classify_arrays(result_type: pa.Array | pa.ChunkedArray | None,
                    method: pa.Array | pa.ChunkedArray | None) -> np.ndarray:
    """:func:`classify` for every row of two aligned Arrow string columns → ``int8`` codes into
    :data:`CLASS_NAMES` (0 hit, 1 miss, then the excluded reasons in :data:`EXCLUDED_REASONS` order).

    ``None`` stands for an absent column (every row null). Each column is dictionary-encoded (a
    dictionary array is used as it is) and :func:`classify` is asked once per *distinct* value, so the
    rule is written once and costs a hash lookup per row. There is no status argument: CloudFront
    already folds the status into the result type (4xx/5xx are ``Error``), and :func:`classify` does
    not look at it either.
    """
    if result_type is None and method is None:
        raise ValueError("classify_arrays needs at least one column to know the number of rows")
    n = len(result_type if result_type is not None else method)  # type: ignore[arg-type]
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    if method is None:
        return np.full(n, METHOD, dtype=np.int8)
    if len(method) != n:
        raise ValueError(f"columns of different lengths: {n} result types, {len(method)} methods")
    ok = _per_value(method, lambda m: (m or "").upper() in CACHEABLE_METHODS, False, np.bool_)
    if result_type is None:
        return np.where(ok, _CLASS_CODE["unknown"], METHOD).astype(np.int8)
    codes = _per_value(result_type, lambda rt: _CLASS_CODE[classify(rt, "GET")], _CLASS_CODE["unknown"], np.int8)
    return np.where(ok, codes, np.int8(METHOD)).astype(np.int8, copy=False)


def _per_value(values: Any, fn: Any, null: Any, dtype: Any) -> np.ndarray:
    """``fn`` of each row of a string column, computed once per distinct value (``null`` for nulls)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from edgeproof.analytics._arrow import scalar, to_numpy  # buffers only: pandas stays unimported

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if _uniform(values):  # one value in every row (a rehearsal's GETs): a comparison, not a hash per row
        return np.full(len(values), fn(values[0].as_py()), dtype=dtype)
    enc = values if pa.types.is_dictionary(values.type) else values.dictionary_encode()
    dictionary = enc.dictionary.to_pylist()
    table = np.array([fn(v) for v in dictionary] + [null], dtype=dtype)
    indices = enc.indices
    if indices.null_count:
        indices = pc.fill_null(indices, scalar(len(dictionary), indices.type))
    return table[to_numpy(indices)]


def _uniform(values: Any) -> bool:
    """Whether every row holds the same non-null value (the first 64 rows are checked first: cheap to refuse)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(values) < 64 or values.null_count or pa.types.is_dictionary(values.type):
        return False
    first = values[0]
    return bool(pc.all(pc.equal(values.slice(0, 64), first)).as_py() and pc.all(pc.equal(values, first)).as_py())


def xcache_result(x_cache: str | None) -> str | None:
    """An ``X-Cache`` response header → its result type.

    ``"Hit from cloudfront"`` → ``"Hit"``, ``"RefreshHit from cloudfront"`` → ``"RefreshHit"``,
    ``"Miss from cloudfront"`` → ``"Miss"``, ``"Error from cloudfront"`` → ``"Error"``,
    ``"LambdaGeneratedResponse from cloudfront"`` → itself. Missing/empty → ``None``.
    """
    if not x_cache:
        return None
    word = x_cache.strip().split(" ", 1)[0]
    if not word:
        return None
    known = {t.lower(): t for t in (*HIT_TYPES, *MISS_TYPES, *_REASON_BY_TYPE)}
    return known.get(word.lower(), word)


def hit_rate(hits: int, misses: int) -> float | None:
    """(Hit + RefreshHit) / (Hit + RefreshHit + Miss + OriginShieldHit); None with no cacheable request."""
    total = hits + misses
    return hits / total if total else None


def quantile_label(q: float) -> str:
    """0.5 → ``p50``, 0.99 → ``p99``, 0.999 → ``p999``."""
    digits = f"{q * 100:.6f}".rstrip("0").rstrip(".")
    return "p" + digits.replace(".", "")


def exact_quantiles(
    values: Iterable[float] | np.ndarray,
    qs: Sequence[float] = DEFAULT_QUANTILES,
    *,
    method: str = "linear",
) -> dict[str, float | None]:
    """Exact percentiles (``{"p50": …, "p99": …}``) of ``values``; ``None`` when there are none.

    ``method`` is numpy's (``linear`` interpolation by default; ``inverted_cdf`` is nearest-rank).
    NaN values are ignored.
    """
    arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return {quantile_label(q): None for q in qs}
    found = np.quantile(arr, list(qs), method=method)  # type: ignore[call-overload]
    return {quantile_label(q): float(v) for q, v in zip(qs, found, strict=True)}


class LatencySketch:
    """Mergeable log-bucket histogram of non-negative values (milliseconds), ≤ 1 % relative error.

    Bucket ``i`` holds values in ``(γ^(i-1), γ^i]`` with ``γ = (1+α)/(1-α)``, α = 0.01; a quantile is
    answered with ``2γ^i/(γ+1)``, within α of every value in the bucket. Values ≤ ``min_value`` count
    as 0; values above ``max_value`` are clamped to the last bucket. Counts live in one dense int64
    array, so :meth:`merge` is an addition and :meth:`to_dict` is small.
    """

    __slots__ = ("alpha", "counts", "gamma", "max_value", "min_value", "n", "total", "zero", "_offset", "_lg")

    def __init__(self, alpha: float = 0.01, min_value: float = 1e-3, max_value: float = 1e7) -> None:
        self.alpha = alpha
        self.gamma = (1 + alpha) / (1 - alpha)
        self._lg = math.log(self.gamma)
        self.min_value = min_value
        self.max_value = max_value
        self._offset = math.ceil(math.log(min_value) / self._lg)
        top = math.ceil(math.log(max_value) / self._lg)
        self.counts = np.zeros(top - self._offset + 1, dtype=np.int64)
        self.zero = 0
        self.n = 0
        self.total = 0.0

    # -- adding --------------------------------------------------------------------------------
    def add(self, value: float) -> None:
        """Add one value (NaN and negatives are ignored)."""
        self.add_many(np.array([value], dtype=np.float64))

    def add_many(self, values: Any) -> None:
        """Add an array (numpy, pyarrow or a sequence) of values; NaN/None and negatives are ignored."""
        arr = values.to_numpy(zero_copy_only=False) if hasattr(values, "to_numpy") else values
        arr = np.asarray(arr, dtype=np.float64)
        self.add_buckets(self.buckets(arr), arr)

    def buckets(self, values: np.ndarray) -> np.ndarray:
        """Bucket code per value: -1 ignored (NaN, negative), 0 the zero bucket, ``i + 1`` bucket ``i``.

        Compute once, then :meth:`add_buckets` any subset (e.g. hits only) without recomputing logs.
        """
        arr = np.asarray(values, dtype=np.float64)
        idx = np.clip(arr, self.min_value, self.max_value)  # one scratch array, then in place
        with np.errstate(invalid="ignore", divide="ignore"):
            np.log(idx, out=idx)
            np.divide(idx, self._lg, out=idx)
            np.ceil(idx, out=idx)
        np.nan_to_num(idx, copy=False, nan=0.0)
        codes = idx.astype(np.int64)
        codes -= self._offset - 1
        np.clip(codes, 1, self.counts.size, out=codes)
        codes[arr <= self.min_value] = 0
        codes[~(arr >= 0)] = -1
        return codes

    def add_buckets(self, codes: np.ndarray, values: np.ndarray) -> None:
        """Add values already coded by :meth:`buckets` (``codes`` and ``values`` aligned)."""
        keep = codes >= 0
        if not keep.any():
            return
        if not keep.all():
            codes, values = codes[keep], values[keep]
        found = np.bincount(codes, minlength=self.counts.size + 1)
        self.zero += int(found[0])
        self.counts += found[1:]
        self.n += int(codes.size)
        self.total += float(values.sum())

    def merge(self, other: LatencySketch) -> LatencySketch:
        """Add ``other``'s counts into this sketch (same parameters required); returns self."""
        if (other.alpha, other.min_value, other.max_value) != (self.alpha, self.min_value, self.max_value):
            raise ValueError("cannot merge sketches with different parameters")
        self.counts += other.counts
        self.zero += other.zero
        self.n += other.n
        self.total += other.total
        return self

    # -- reading -------------------------------------------------------------------------------
    def quantile(self, q: float) -> float | None:
        """The q-quantile (nearest rank, within α relative error); None when empty."""
        if self.n == 0:
            return None
        if not 0.0 <= q <= 1.0:
            raise ValueError("q must be in [0, 1]")
        rank = max(math.ceil(q * self.n) - 1, 0)  # 0-based nearest-rank
        if rank < self.zero:
            return 0.0
        cum = np.cumsum(self.counts)
        i = int(np.searchsorted(cum, rank - self.zero + 1))
        return float(2 * self.gamma ** (i + self._offset) / (self.gamma + 1))

    def quantiles(self, qs: Sequence[float] = DEFAULT_QUANTILES, *, ndigits: int = 3) -> dict[str, float | None]:
        """``{"p50": …, "p90": …, "p99": …, "p999": …}`` rounded to ``ndigits``."""
        out: dict[str, float | None] = {}
        for q in qs:
            v = self.quantile(q)
            out[quantile_label(q)] = None if v is None else round(v, ndigits)
        return out

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (sparse counts) that :meth:`from_dict` restores."""
        nz = np.nonzero(self.counts)[0]
        return {
            "alpha": self.alpha,
            "min_value": self.min_value,
            "max_value": self.max_value,
            "n": self.n,
            "total": self.total,
            "zero": self.zero,
            "buckets": {str(int(i) + self._offset): int(self.counts[i]) for i in nz},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencySketch:
        sketch = cls(float(data["alpha"]), float(data["min_value"]), float(data["max_value"]))
        sketch.n = int(data["n"])
        sketch.total = float(data["total"])
        sketch.zero = int(data["zero"])
        for key, count in data.get("buckets", {}).items():
            sketch.counts[int(key) - sketch._offset] += int(count)
        return sketch

    def __repr__(self) -> str:
        return f"LatencySketch(n={self.n}, p50={self.quantile(0.5)}, p99={self.quantile(0.99)})"
