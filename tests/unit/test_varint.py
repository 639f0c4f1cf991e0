"""One base-128 varint encoder (issue 12 item 11: it was written in the response encoder, the
load generator and the hostile-input strategies): it matches protobuf's own encoding, and every
hand-encoding module uses it."""
from __future__ import annotations

import pytest
from google.protobuf.internal import encoder

from oms.server.varint import encode_varint


def _reference(n: int) -> bytes:
    out: list[bytes] = []
    encoder._EncodeSignedVarint(out.append, n)  # int64 semantics: negatives take ten bytes
    return b"".join(out)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 2**31 - 1, 2**32, 2**63 - 1,
                               -1, -2, -(2**31), -(2**63)])
def test_matches_protobuf(n: int) -> None:
    assert encode_varint(n) == _reference(n)


def test_every_hand_encoder_shares_it() -> None:
    from oms.clients.load import order_pool
    from oms.server import response_bytes
    from tests.hostile import strategies

    for mod in (response_bytes, order_pool, strategies):
        assert mod._varint is encode_varint, mod.__name__
