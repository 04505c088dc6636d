"""The blocking bridge: synchronous callers on worker threads, the loop on its own.

- ``bridge``: the two ways in, :func:`~swaysim.blocking_backend` and
  :func:`~swaysim.run_sync_probe` (how calls map to loop tasks, time, cancellation).
- ``host``: the loop side: requests (kinds as :class:`~swaysim._bridge.host.RequestKind`)
  served by per-thread lanes and per-op tasks.
- ``blocking``: the thread side: :class:`~swaysim.BlockingBackend` and
  :class:`~swaysim.BlockingView`, each call a request the thread blocks on.
"""

from __future__ import annotations
