"""The load generator's latency histogram (HDR-style, mergeable over processes)."""
from __future__ import annotations

import math
from typing import Any


class Histogram:
    """HDR-style latency histogram of non-negative integers (microseconds here).

    Values below 2**SUB_BITS are exact; above, each power-of-two range is split into
    2**(SUB_BITS-1) equal buckets, so a bucket is never wider than 1/128 of its values (< 0.8 %
    relative error with SUB_BITS = 8). Recording is a few integer operations; histograms merge
    by adding counts, so per-process histograms combine exactly.
    """

    SUB_BITS = 8
    SUB = 1 << SUB_BITS  # 256
    HALF = SUB >> 1  # 128

    def __init__(self) -> None:
        self.counts: list[int] = [0] * (self.SUB + 56 * self.HALF)
        self.total = 0
        self.sum = 0
        self.min = 0
        self.max = 0

    @classmethod
    def index(cls, v: int) -> int:
        if v < cls.SUB:
            return v
        shift = v.bit_length() - cls.SUB_BITS
        return cls.SUB + (shift - 1) * cls.HALF + ((v >> shift) - cls.HALF)

    @classmethod
    def bounds(cls, i: int) -> tuple[int, int]:
        """[low, high) of the values that land in bucket i."""
        if i < cls.SUB:
            return i, i + 1
        k = i - cls.SUB
        shift = k // cls.HALF + 1
        top = k % cls.HALF + cls.HALF
        return top << shift, (top + 1) << shift

    def record(self, v: int, n: int = 1) -> None:
        if v < 0:
            v = 0
        self.counts[self.index(v)] += n
        if self.total == 0 or v < self.min:
            self.min = v
        if v > self.max:
            self.max = v
        self.total += n
        self.sum += v * n

    def merge(self, other: "Histogram") -> "Histogram":
        if other.total:
            for i, n in enumerate(other.counts):
                if n:
                    self.counts[i] += n
            self.min = other.min if self.total == 0 else min(self.min, other.min)
            self.max = max(self.max, other.max)
            self.total += other.total
            self.sum += other.sum
        return self

    def percentile(self, q: float) -> int:
        """The highest value equivalent to the q-th percentile (0 < q <= 100), clamped to the
        recorded min/max. 0 when empty."""
        if not self.total:
            return 0
        rank = max(1, math.ceil(self.total * q / 100.0))
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return max(self.min, min(self.max, self.bounds(i)[1] - 1))
        return self.max

    @property
    def mean(self) -> float:
        return self.sum / self.total if self.total else 0.0

    def cdf(self) -> list[tuple[int, float]]:
        """(value, fraction of samples <= value) at each non-empty bucket's upper edge."""
        out, seen = [], 0
        for i, n in enumerate(self.counts):
            if n:
                seen += n
                out.append((min(self.max, self.bounds(i)[1] - 1), seen / self.total))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"unit": "us", "sub_bucket_bits": self.SUB_BITS, "total": self.total,
                "sum": self.sum, "min": self.min, "max": self.max,
                "counts": {str(i): n for i, n in enumerate(self.counts) if n}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Histogram":
        h = cls()
        if d.get("sub_bucket_bits", cls.SUB_BITS) != cls.SUB_BITS:
            raise ValueError("histogram with a different bucket layout")
        for i, n in d["counts"].items():
            h.counts[int(i)] += int(n)
        h.total, h.sum, h.min, h.max = int(d["total"]), int(d["sum"]), int(d["min"]), int(d["max"])
        return h


def latency_summary_ms(h: Histogram) -> dict[str, float]:
    return {"p50": h.percentile(50) / 1000, "p90": h.percentile(90) / 1000,
            "p99": h.percentile(99) / 1000, "p99.9": h.percentile(99.9) / 1000,
            "min": h.min / 1000, "max": h.max / 1000, "mean": round(h.mean / 1000, 3),
            "count": h.total}
