"""dlm-sway's own code against swaysim: the drop-in dummy, its pytest switch, its runner.

The public face is :mod:`swaysim.dlm_sway`; every module here imports
``dlm_sway``, so nothing imports this package unless dlm-sway is installed.

- ``convert``: dlm-sway's ``DummyResponses``, ``TokenDist`` and
  ``RollingLogprob`` to swaysim's and back (canned tables stay live).
- ``bridge``: each drop-in's blocking bridge, opened on first use and closed
  by ``close()``, a finalizer or interpreter exit, never waiting unboundedly.
- ``instrumentation``: the ``backend._inst`` dlm-sway's runner reads (cache
  counters, probe label, trace writer), backed by swaysim's statistics.
- ``backend``: the drop-in ``DummyDifferentialBackend`` and its views.
- ``swap``: replacing dlm-sway's dummy with the drop-in (the pytest switch).
"""

from __future__ import annotations
