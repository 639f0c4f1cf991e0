"""The fake sales channels moved into the package (oms.clients.fake_shops) so the demo and the
channels benchmark can use them; the tests keep importing them from here."""
from oms.clients.fake_shops import *  # noqa: F403
from oms.clients.fake_shops import SHOPIFY_PREFIX, Call, FakeShop, FakeShopThread, Fault

__all__ = ["SHOPIFY_PREFIX", "Call", "FakeShop", "FakeShopThread", "Fault"]
