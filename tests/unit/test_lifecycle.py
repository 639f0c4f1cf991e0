import pytest

from oms.engine.errors import TransitionError
from oms.engine.lifecycle import TERMINAL, TRANSITIONS, OrderStatus, allowed_sources, check_transition
from oms.v1 import common_pb2


def test_values_match_proto_enum() -> None:
    for s in OrderStatus:
        assert common_pb2.OrderStatus.Value("ORDER_STATUS_" + s.name) == s.value
    assert len(common_pb2.OrderStatus.keys()) == len(OrderStatus) + 1


@pytest.mark.parametrize("cur", list(OrderStatus))
@pytest.mark.parametrize("target", list(OrderStatus))
def test_every_pair_is_allowed_or_raises(cur: OrderStatus, target: OrderStatus) -> None:
    if target in TRANSITIONS[cur]:
        check_transition("o1", cur, target)
        assert cur in allowed_sources(target)
    else:
        with pytest.raises(TransitionError, match=f"{cur.name} to {target.name}"):
            check_transition("o1", cur, target)


def test_terminal_states() -> None:
    assert TERMINAL == {OrderStatus.CANCELLED, OrderStatus.REFUNDED}
