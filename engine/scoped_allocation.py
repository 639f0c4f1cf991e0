"""Allocation where each order may draw only from its own set of warehouses (a sales channel
that ships from some warehouses only), on top of ``engine.allocation``.

Every order has a *scope*: an index into a list of warehouse masks. Orders of one scope are
allocated by one kernel call with that mask as ``enabled`` (the policy of
``engine.allocation``: zone skipping, fewest warehouses, partial, backorder, all within the
mask). Scopes run one after another in the order of their first order in the batch, on ONE
``available`` array decremented in place, so a scope sees what the earlier ones took. Within a
scope orders keep batch order; across scopes an order of an earlier scope goes first. A batch
whose orders all share one scope (the common case) is exactly one ``allocate`` call.

The merged plan has the same shape as ``allocate``'s: global order and line indices, rows
grouped by order in batch order, each order's rows in the order its kernel call made them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from oms.engine import allocation
from oms.engine.allocation import AllocationPlan
from oms.engine.channels import Channel
from oms.engine.errors import PreconditionError, ValidationError

__all__ = ["ChannelScopes", "allocate_scoped", "nearest_allowed", "scope_groups"]


class ChannelScopes:
    """The warehouse masks of a batch's orders by sales channel. Scope 0 is ``enabled`` (all
    warehouses by default): orders of an unregistered channel, or of a channel without a
    warehouse list. Each other scope is one channel's warehouses that are also enabled.

    ``scope(channel_id)`` is the order's scope, or a ``PreconditionError`` for an order that
    cannot be allocated at all: its channel is disabled (when ``refuse_disabled``: new orders
    are refused, existing ones are still served), or none of its warehouses is enabled."""

    def __init__(self, warehouse_ids: Sequence[str], channels: Mapping[str, Channel],
                 enabled: np.ndarray | None = None, *, refuse_disabled: bool = True) -> None:
        n = len(warehouse_ids)
        base = np.ones(n, dtype=np.bool_) if enabled is None else \
            np.ascontiguousarray(enabled, dtype=np.bool_)
        self.masks: list[np.ndarray] = [base]
        self._pos = {w: k for k, w in enumerate(warehouse_ids)}
        self._channels = channels
        self._refuse_disabled = refuse_disabled
        self._by_mask: dict[bytes, int] = {base.tobytes(): 0}
        self._by_channel: dict[str, int | PreconditionError] = {}

    def scope(self, channel_id: str) -> int | PreconditionError:
        s = self._by_channel.get(channel_id)
        if s is None:
            s = self._by_channel[channel_id] = self._resolve(channel_id)
        return s

    def _resolve(self, channel_id: str) -> int | PreconditionError:
        ch = self._channels.get(channel_id)
        if ch is None:
            return 0
        if ch.disabled and self._refuse_disabled:
            return PreconditionError(f"channel {ch.id} is disabled")
        if not ch.warehouse_ids:
            return 0
        mask = np.zeros_like(self.masks[0])
        for w in ch.warehouse_ids:
            k = self._pos.get(w)
            if k is not None:
                mask[k] = True
        mask &= self.masks[0]
        if not mask.any():
            return PreconditionError(f"no enabled warehouse for channel {ch.id}")
        s = self._by_mask.get(mask.tobytes())
        if s is None:  # channels with the same warehouses share a scope (one kernel call)
            s = self._by_mask[mask.tobytes()] = len(self.masks)
            self.masks.append(mask)
        return s


def scope_groups(scope: Sequence[int] | np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(scope, ascending order indices) per distinct scope, in order of first appearance."""
    sc = np.asarray(scope, dtype=np.int64)
    if sc.size == 0:
        return []
    uniq, first = np.unique(sc, return_index=True)
    return [(int(uniq[j]), np.flatnonzero(sc == uniq[j])) for j in np.argsort(first)]


def _check(masks: Sequence[np.ndarray], scope: np.ndarray, n_orders: int, n_wh: int) -> None:
    if scope.ndim != 1 or scope.shape[0] != n_orders:
        raise ValidationError.one("scope", f"must be 1-D of length {n_orders}, got shape "
                                  f"{scope.shape}")
    if n_orders and (int(scope.min()) < 0 or int(scope.max()) >= len(masks)):
        raise ValidationError.one("scope", f"scope index out of range [0, {len(masks)})")
    for k, m in enumerate(masks):
        arr = np.asarray(m)
        if arr.shape != (n_wh,) or arr.dtype.kind not in "biu":
            raise ValidationError.one(f"masks[{k}]", f"must be a boolean array of length {n_wh}")


def allocate_scoped(line_ptr: np.ndarray, line_sku: np.ndarray, line_qty: np.ndarray,
                    dist: np.ndarray, available: np.ndarray, masks: Sequence[np.ndarray],
                    scope: Sequence[int] | np.ndarray, allow_partial: np.ndarray,
                    max_set_size: int = 4, *, inplace: bool = False, check: bool = True,
                    reference: bool = False) -> AllocationPlan:
    """Allocate a batch where order o may use only the warehouses ``masks[scope[o]]`` (module
    docstring). Arguments as ``allocation.allocate``; ``reference`` runs
    ``allocate_reference`` instead of the kernel (tests). With ``check=False`` the arrays must
    already have the kernel's dtypes (C-contiguous int64, float64 ``dist``, bool masks)."""
    sc = np.asarray(scope, dtype=np.int64)
    ptr = np.asarray(line_ptr, dtype=np.int64)
    n_orders = ptr.shape[0] - 1
    if check:
        _check(masks, sc, n_orders, np.asarray(available).shape[0])
    groups = scope_groups(sc)

    def run(p, s, q, d, avail, mask, part) -> AllocationPlan:
        if reference:
            return allocation.allocate_reference(p, s, q, d, avail, mask, part, max_set_size,
                                                 inplace=True)
        return allocation.allocate(p, s, q, d, avail, mask, part, max_set_size, inplace=True,
                                   check=check)

    if check or not inplace:
        avail = np.array(available, dtype=np.int64, order="C", copy=True)
    else:
        avail = available
    if len(groups) <= 1:
        mask = masks[groups[0][0]] if groups else np.ones(avail.shape[0], dtype=np.bool_)
        plan = run(ptr, line_sku, line_qty, dist, avail, mask, allow_partial)
    else:
        plan = _run_groups(run, groups, ptr, np.asarray(line_sku, dtype=np.int64),
                           np.asarray(line_qty, dtype=np.int64), np.asarray(dist, dtype=np.float64),
                           avail, masks, np.asarray(allow_partial, dtype=np.bool_))
    if inplace and avail is not available:
        available[...] = avail
    return plan


def _run_groups(run, groups: list[tuple[int, np.ndarray]], ptr: np.ndarray, sku: np.ndarray,
                qty: np.ndarray, dist: np.ndarray, avail: np.ndarray,
                masks: Sequence[np.ndarray], part: np.ndarray) -> AllocationPlan:
    n_orders = ptr.shape[0] - 1
    status = np.empty(n_orders, dtype=np.int8)
    n_used = np.zeros(n_orders, dtype=np.int64)
    cols: list[list[np.ndarray]] = [[], [], [], []]
    counts = np.diff(ptr)
    for s, ks in groups:
        c = counts[ks]
        sub_ptr = np.zeros(len(ks) + 1, dtype=np.int64)
        np.cumsum(c, out=sub_ptr[1:])
        # global index of each of the group's lines: its order's first line + offset in it
        lines = np.repeat(ptr[ks] - sub_ptr[:-1], c) + np.arange(sub_ptr[-1], dtype=np.int64)
        plan = run(sub_ptr, np.ascontiguousarray(sku[lines]), np.ascontiguousarray(qty[lines]),
                   np.ascontiguousarray(dist[ks]), avail,
                   np.ascontiguousarray(masks[s], dtype=np.bool_),
                   np.ascontiguousarray(part[ks]))
        status[ks] = plan.status
        n_used[ks] = plan.n_warehouses_used
        cols[0].append(ks[plan.alloc_order])
        cols[1].append(lines[plan.alloc_line])
        cols[2].append(plan.alloc_wh)
        cols[3].append(plan.alloc_qty)
    o, ln, w, q = (np.concatenate(c).astype(np.int64) for c in cols)
    perm = np.argsort(o, kind="stable")  # rows by order; an order's rows keep their order
    return AllocationPlan(status, n_used, o[perm], ln[perm], w[perm], q[perm])


def nearest_allowed(dist: np.ndarray, masks: Sequence[np.ndarray],
                    scope: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per order, the nearest warehouse its mask allows (ties: the lower index), -1 when the
    mask allows none: where a backordered order waits."""
    d = np.asarray(dist, dtype=np.float64)
    out = np.full(d.shape[0], -1, dtype=np.int64)
    for s, ks in scope_groups(scope):
        allowed = np.flatnonzero(np.asarray(masks[s], dtype=np.bool_))
        if len(allowed) and len(ks):
            out[ks] = allowed[np.argmin(d[np.ix_(ks, allowed)], axis=1)]
    return out
