"""The shards' stats counters as a typed value: the counter names the scripts write ("st:<n>",
"ch:<channel>", "m:<minute>", plain names) are parsed here, not by the reporting servicer."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Counters:
    """Counters summed over shards. ``by_status`` and ``by_channel`` keep the order of the
    sorted counter names; ``per_minute`` maps a minute (unix time // 60) to orders placed."""

    by_status: dict[int, int] = field(default_factory=dict)
    by_channel: dict[str, int] = field(default_factory=dict)
    per_minute: dict[int, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)  # the plain counters (alloc, ship, ...)

    def get(self, name: str) -> int:
        return self.totals.get(name, 0)


def parse_counters(raw: dict[str, int]) -> Counters:
    out = Counters()
    for name, v in sorted(raw.items()):
        kind, sep, rest = name.partition(":")
        if sep and kind == "st":
            out.by_status[int(rest)] = v
        elif sep and kind == "ch":
            out.by_channel[rest] = v
        elif sep and kind == "m":
            out.per_minute[int(rest)] = v
        else:
            out.totals[name] = v
    return out
