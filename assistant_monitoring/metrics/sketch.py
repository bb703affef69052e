"""A mergeable quantile sketch with bounded relative error (DDSketch's log mapping).

A value ``v > 0`` falls in bin ``ceil(log(v) / log(gamma))`` with
``gamma = (1 + a) / (1 - a)``; every value in a bin is within ``a`` (relative) of the
bin's representative value, so any quantile read from the bins is within ``a`` of
the true one, whatever the distribution. With ``a = 0.0075`` quantiles are within
0.75%: inside the 1% we promise, with room for float rounding.

Two representations:

* in process, a ``dict`` bin -> count (one ``+= 1`` per observation);
* in the store, a dense little-endian ``uint32`` array after a 4-byte signed offset.
  Dense arrays merge with integer arithmetic: ``int.from_bytes`` of each array,
  shifted to a common offset, added as Python ints, adds every bin at once in C.
  Merging a month of hourly rows is thousands of big-int additions, not millions of
  dict updates.

The same dense encoding carries the exact Prometheus ``le`` bucket counts. A bin
holds up to 2**32 - 1 observations per stored row and per query result, far more
than a month of an assistant's traffic.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping

RELATIVE_ACCURACY = 0.0075
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LOG_GAMMA = math.log(GAMMA)
INV_LOG_GAMMA = 1.0 / LOG_GAMMA
# Values at or below this (0 tokens, a 0 s cache hit) are counted as zero.
MIN_POSITIVE = 1e-9

_FIELD = 4  # bytes per bin in the dense encoding
_OFFSET = struct.Struct("<i")


def bin_index(value: float) -> int:
    """The bin of a positive value."""
    return math.ceil(math.log(value) * INV_LOG_GAMMA)


def bin_value(index: int) -> float:
    """The representative value of a bin (the midpoint in relative terms)."""
    return 2.0 * GAMMA**index / (GAMMA + 1.0)


def encode_dense(bins: Mapping[int, int]) -> bytes:
    """Encode ``{bin: count}`` as offset + dense uint32 counts (b'' when empty)."""
    if not bins:
        return b""
    low, high = min(bins), max(bins)
    counts = [0] * (high - low + 1)
    for index, count in bins.items():
        counts[index - low] = count
    return _OFFSET.pack(low) + struct.pack(f"<{len(counts)}I", *counts)


def decode_dense(blob: bytes) -> dict[int, int]:
    """Inverse of :func:`encode_dense`, skipping empty bins."""
    if not blob:
        return {}
    (low,) = _OFFSET.unpack_from(blob)
    count = (len(blob) - _FIELD) // _FIELD
    values = struct.unpack_from(f"<{count}I", blob, _FIELD)
    return {low + i: c for i, c in enumerate(values) if c}


def merge_dense(left: bytes | None, right: bytes | None) -> bytes:
    """Add two dense arrays bin by bin (big-int addition; see the module docstring)."""
    if not left:
        return bytes(right or b"")
    if not right:
        return left
    low_left: int = _OFFSET.unpack_from(left)[0]
    low_right: int = _OFFSET.unpack_from(right)[0]
    low = min(low_left, low_right)
    shift_left = (low_left - low) * _FIELD
    shift_right = (low_right - low) * _FIELD
    total = (int.from_bytes(left[_FIELD:], "little") << (8 * shift_left)) + (
        int.from_bytes(right[_FIELD:], "little") << (8 * shift_right)
    )
    size = max(len(left) - _FIELD + shift_left, len(right) - _FIELD + shift_right)
    return _OFFSET.pack(low) + total.to_bytes(size, "little")


def merge_many(blobs: Iterable[bytes | None]) -> bytes:
    """Merge any number of dense arrays at once (one shift and add each)."""
    present = [blob for blob in blobs if blob]
    if not present:
        return b""
    if len(present) == 1:
        return present[0]
    offsets = [_OFFSET.unpack_from(blob)[0] for blob in present]
    low = min(offsets)
    total = 0
    size = 0
    for blob, offset in zip(present, offsets, strict=True):
        shift = (offset - low) * _FIELD
        total += int.from_bytes(blob[_FIELD:], "little") << (8 * shift)
        size = max(size, len(blob) - _FIELD + shift)
    return _OFFSET.pack(low) + total.to_bytes(size, "little")


def quantile_from_dense(
    blob: bytes, zero_count: int, total: int, q: float, *, low: float, high: float
) -> float | None:
    """The ``q`` quantile (0..1) of a merged sketch, clamped to the observed range."""
    if total <= 0:
        return None
    rank = q * (total - 1)
    if rank < zero_count:
        return 0.0
    seen = zero_count
    for index, count in sorted(decode_dense(blob).items()):
        seen += count
        if seen > rank:
            return min(max(bin_value(index), low), high)
    return high


def bucket_counts(values: Iterable[float], bounds: tuple[float, ...]) -> list[int]:
    """Exact per-bucket counts (not cumulative) for ``le`` bounds, +Inf last."""
    import bisect

    counts = [0] * (len(bounds) + 1)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1
    return counts


def encode_counts(counts: list[int]) -> bytes:
    """Dense encoding of plain bucket counts (offset 0)."""
    return _OFFSET.pack(0) + struct.pack(f"<{len(counts)}I", *counts)


def decode_counts(blob: bytes, length: int) -> list[int]:
    """Bucket counts of a dense array, padded to ``length``."""
    counts = [0] * length
    for index, count in decode_dense(blob).items():
        if 0 <= index < length:
            counts[index] = count
    return counts


__all__ = [
    "GAMMA",
    "MIN_POSITIVE",
    "RELATIVE_ACCURACY",
    "bin_index",
    "bin_value",
    "bucket_counts",
    "decode_counts",
    "decode_dense",
    "encode_counts",
    "encode_dense",
    "merge_dense",
    "merge_many",
    "quantile_from_dense",
]
