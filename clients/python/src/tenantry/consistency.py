"""Session consistency: a client reads its own writes on any service or replica.

Every Tenantry write answers a consistency token in the `x-tenantry-consistency-token`
response metadata. The client keeps the newest one it has seen and sends it on every later
call, so reads and checks reflect at least that state, whichever process answers (the
server also remembers a principal's newest token, but only in the process that served the
write). Hand `Client.consistency_token` to another client (or to
`Consistency.at_least_as_fresh`) to make it see this client's writes too.
"""

from __future__ import annotations

import re
import threading
from typing import Iterable, Optional, Tuple

HEADER = "x-tenantry-consistency-token"

# Tokens read `r<revision>` and, when a write still waits for an event, `.e<event id>`
# (UUIDv7, ordered by time). A token of another shape is kept as is, newest seen wins.
_TOKEN = re.compile(r"^r(\d{1,18})(?:\.e([0-9a-fA-F-]{36}))?$")


def _parse(token: str) -> Optional[Tuple[int, str]]:
    match = _TOKEN.match(token)
    if not match:
        return None
    return int(match.group(1)), (match.group(2) or "").lower()


def merge(current: Optional[str], new: str) -> str:
    """The later of two tokens: the higher revision and the newer pending event, as the
    server merges them; an unparseable token replaces the current one."""
    if current is None:
        return new
    a, b = _parse(current), _parse(new)
    if a is None or b is None:
        return new
    revision = max(a[0], b[0])
    event = max(a[1], b[1])
    return f"r{revision}.e{event}" if event else f"r{revision}"


class ConsistencyTracker:
    """The newest consistency token of one client session (thread-safe)."""

    def __init__(self, token: Optional[str] = None) -> None:
        self._lock = threading.Lock()
        self._token = token or None

    @property
    def token(self) -> Optional[str]:
        """The newest token seen, or None before the first write."""
        with self._lock:
            return self._token

    def observe(self, metadata: Optional[Iterable[Tuple[str, object]]]) -> None:
        """Records the token of a response's (initial or trailing) metadata, if any."""
        for key, value in metadata or ():
            if key == HEADER and isinstance(value, str) and value:
                with self._lock:
                    self._token = merge(self._token, value)

    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        """What to send: the newest token, or nothing."""
        token = self.token
        return ((HEADER, token),) if token else ()
