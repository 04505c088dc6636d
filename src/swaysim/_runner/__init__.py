"""The reference runner, the probe model and the reference probes.

The probe model (what any runner, swaysim's or a user's, works with):

- ``requests``: :class:`~swaysim.ViewRef`, :class:`~swaysim.Ask` and
  :class:`~swaysim.Answers`: what a probe asks of which view, and the answers.
- ``probes``: :class:`~swaysim.Probe`, :class:`~swaysim.FunctionProbe` and
  :class:`~swaysim.ProbeContext`.
- ``results``: :class:`~swaysim.Verdict`, :class:`~swaysim.ProbeResult` and
  :class:`~swaysim.NullCalibration`.

The reference runner, :func:`~swaysim.run_suite`:

- ``suite``: ``run_suite``, :class:`~swaysim.SuiteResult`, preflight, the pooled and
  naive schedules.
- ``policy``: its options as one validated :class:`~swaysim._runner.policy.RunPolicy`.
- ``planning``: probes checked and ordered, requests pooled per view.
- ``execution``: views entered and requests sent under the policy; retries,
  timeouts and the runner's trace events.
- ``completion``: answers turned into results (function probes run whole).

The reference probes and their maths:

- ``calibration``: :class:`~swaysim.NumericProbe` and :class:`~swaysim.NullAdapter`: z-scores
  against null adapters.
- ``reference_probes``: :class:`~swaysim.DeltaKL`, :class:`~swaysim.AdapterAblation`,
  :class:`~swaysim.PreferenceFlip`, :class:`~swaysim.PerplexityShift`.
- ``output_validation``: checks of what views return, before any maths.
- ``divergence``: divergences, logprob deltas, null statistics, response curves.
"""

from __future__ import annotations
