"""Base-128 varints, the integer encoding of the protobuf wire format, for the modules that
write protobuf bytes by hand (the response encoder, the load generator, the hostile-input
tests)."""
from __future__ import annotations

from functools import lru_cache

__all__ = ["encode_varint"]


# Cached: the response encoder asks for the same lengths and numbers over and over, and the
# call count is what its speed is about.
@lru_cache(maxsize=8192)
def encode_varint(n: int) -> bytes:
    """``n`` as a varint; a negative ``n`` is taken as an int64 (two's complement, ten bytes)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
