"""The latency monitor (LATENCY LATEST/HISTORY/GRAPH/DOCTOR/RESET) and the
per-command latency histograms (LATENCY HISTOGRAM, INFO latencystats).

What a tenant sees (DESIGN.md: no figure that moves with other tenants'
activity): the `command` and `fast-command` events of its own commands, kept
in its own monitor (`tenant.latency`, made at its first event). The server's
events (`fork`, `expire-cycle`, `aof-fsync-always`, ...) and the `command`
events of every tenant are root's: the server's monitor
(`server.latency`). A tenant's LATENCY RESET clears its own monitor, root's
the server's.

The histograms are per command (`Command.hist`), counted on the hot path
only while latency-tracking is on: server-wide, so they are root's; a
tenant gets an empty LATENCY HISTOGRAM and no latencystats (timing every
command per tenant is a second count per command on the hot path).

The bucket of a duration is Redis's (an HDR histogram from 1024 ns,
doubling): bucket i holds the durations up to 1024 * 2**i ns, shown as
2**i microseconds (LATENCY HISTOGRAM's histogram_usec).
"""

from collections import deque
from time import time

HISTORY = 160      # LATENCY_TS_LEN: samples kept per event
BUCKETS = 48       # 2**47 us: four years


def new_histogram() -> list:
    return [0] * BUCKETS


def bucket(seconds: float) -> int:
    return min((int(seconds * 1e9) - 1 >> 10).bit_length(), BUCKETS - 1)


class Event:
    __slots__ = ("samples", "max")

    def __init__(self) -> None:
        self.samples: deque = deque(maxlen=HISTORY)   # [unix time, ms], oldest first
        self.max = 0


class Monitor:
    """The events of one view (the server's, or one tenant's)."""
    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: dict = {}   # name -> Event

    def add(self, name: str, ms: int) -> None:
        """latencyAddSample: one sample per second, the worst of that second."""
        event = self.events.get(name)
        if event is None:
            event = self.events[name] = Event()
        now = int(time())
        samples = event.samples
        if samples and samples[-1][0] == now:
            if ms > samples[-1][1]:
                samples[-1][1] = ms
        else:
            samples.append([now, ms])
        if ms > event.max:
            event.max = ms

    def latest(self) -> list:
        return [[name.encode(), e.samples[-1][0], e.samples[-1][1], e.max]
                for name, e in self.events.items()]

    def history(self, name: str) -> list:
        event = self.events.get(name)
        return [] if event is None else [list(s) for s in event.samples]

    def reset(self, names: list) -> int:
        if not names:
            count = len(self.events)
            self.events.clear()
            return count
        count = 0
        for name in names:
            if self.events.pop(name, None) is not None:
                count += 1
        return count


class Latency:
    """The server's side: the threshold and the server's own monitor."""

    def __init__(self) -> None:
        self.threshold = 0   # latency-monitor-threshold, ms; 0: off
        self.server = Monitor()

    def add(self, name: str, seconds: float, tenant=None) -> None:
        """An event that lasted `seconds`, recorded if over the threshold,
        in the server's monitor and in `tenant`'s (a command's)."""
        ms = int(seconds * 1000)
        if not self.threshold or ms < self.threshold:
            return
        self.server.add(name, ms)
        if tenant is not None:
            monitor = tenant.latency
            if monitor is None:
                monitor = tenant.latency = Monitor()
            monitor.add(name, ms)

    def view(self, client):
        """The monitor `client` reads (and resets)."""
        if client.root:
            return self.server
        monitor = client.tenant.latency
        # A tenant without events reads an empty one, not kept: reading
        # costs its tenant nothing.
        return monitor if monitor is not None else Monitor()


def slow(client, cmd, args: list, seconds: float) -> None:
    """A command ran at least server.timed_after seconds: the slow log and
    the latency monitor decide whether it counts (off the hot path)."""
    if "skip_slowlog" in cmd.flags:   # EXEC: its commands are, one by one
        return
    server = client.server
    server.slowlog.record(client, cmd, args, seconds)
    server.latency.add("fast-command" if "fast" in cmd.flags else "command",
                       seconds, client.tenant)


def percentile(hist: list, calls: int, p: float) -> float:
    """The bucket value (us) below which p% of the calls fall."""
    if calls <= 0:
        return 0.0
    wanted = calls * p / 100.0
    seen = 0
    for i, count in enumerate(hist):
        seen += count
        if count and seen >= wanted:
            return (1024 << i) / 1000.0
    return (1024 << (len(hist) - 1)) / 1000.0


def cdf(hist: list) -> dict:
    """histogram_usec: bucket value (us) -> calls up to it, where it grows."""
    reply = {}
    seen = 0
    for i, count in enumerate(hist):
        if count:
            seen += count
            reply[(1024 << i) // 1000] = seen
    return reply


def sparkline(name: str, event: Event) -> bytes:
    """LATENCY GRAPH's text, as Redis's latencyCommandGenSparkline: a header
    with the highest and lowest samples kept, then one column per sample
    (oldest left), its height the sample's share of the range, and its age
    under it."""
    samples = list(event.samples)
    high = max(s[1] for s in samples)
    low = min(s[1] for s in samples)
    lines = ["%s - high %d ms, low %d ms (all time high %d ms)" % (name, high, low, event.max),
             "-" * 80]
    rows = 4
    span = (high - low) or 1
    heights = [1 + (s[1] - low) * (rows - 1) // span if high != low else rows for s in samples]
    for row in range(rows, 0, -1):
        lines.append("".join("#" if h >= row and row == rows else
                             "|" if h >= row else "_" if h == row - 1 else " "
                             for h in heights).rstrip())
    lines.append("")
    now = int(time())
    ages = []
    for s in samples:
        age = now - s[0]
        ages.append("%ds" % age if age < 60 else "%dm" % (age // 60) if age < 3600
                    else "%dh" % (age // 3600) if age < 86400 else "%dd" % (age // 86400))
    width = max(len(a) for a in ages)
    for i in range(width):
        lines.append("".join(a[i] if i < len(a) else " " for a in ages).rstrip())
    return ("\n".join(lines) + "\n").encode()


DISABLED = (b"I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis "
            b"instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in "
            b"order to enable it. If we weren't in a deep space mission I'd suggest to take a "
            b"look at https://redis.io/topics/latency-monitor.\n")


def doctor(monitor: Monitor) -> bytes:
    if not monitor.events:
        return (b"Dave, no latency spike was observed during the lifetime of this Redis "
                b"instance, not in the slightest bit. I honestly think you ought to sleep "
                b"tonight.\n")
    lines = ["Dave, I have observed latency spikes in this Redis instance. "
             "You don't mind talking about it, do you Dave?", ""]
    for n, (name, event) in enumerate(monitor.events.items(), 1):
        values = [s[1] for s in event.samples]
        avg = sum(values) // len(values)
        lines.append("%d. %s: %d latency spikes (average %dms, mean deviation %dms, "
                     "period %s sec). Worst all time event %dms."
                     % (n, name, len(values), avg,
                        sum(abs(v - avg) for v in values) // len(values),
                        (event.samples[-1][0] - event.samples[0][0]) // max(1, len(values) - 1)
                        if len(values) > 1 else "n/a", event.max))
    lines += ["", "I have a few advices for you:", "",
              "- Check the slow log (SLOWLOG GET) for the commands that took long, "
              "and INFO commandstats / latencystats for their averages and percentiles."]
    return ("\n".join(lines) + "\n").encode()
