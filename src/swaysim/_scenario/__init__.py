"""Scenario files, one stage per module; the public face is :mod:`swaysim.scenario`.

- ``schema``: the file format as pydantic models, and its JSON Schema.
- ``messages``: problems as data (key path, line, message) and their one-line wording.
- ``build``: API objects from validated tables; API complaints mapped onto key paths.
- ``load``: bytes to a validated, cross-checked :class:`~swaysim._scenario.load.Scenario`.
- ``run``: one run on one event loop, recorded as a ``ScenarioRun``.
- ``expect``: each ``[expect]`` key checked against a recorded run.
- ``check``: the runs a check needs, and their outcomes, per loop.
"""

from __future__ import annotations
