"""The HTML report: self-contained, escaped, aggregated for big runs, and clean in a real browser.

The browser tests drive Debian's chromium headless over the DevTools
protocol on a pipe (``--remote-debugging-pipe``), so they need no websocket
client or driver package; they skip when ``/usr/bin/chromium`` is missing
(``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import select
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    FaultPlan,
    FaultRule,
    InjectedFault,
    InvalidArgumentError,
    JsonlTraceWriter,
    LatencyPlan,
    LogNormal,
    TraceEvent,
    read_trace,
    run,
    write_report,
)
from swaysim._trace.report.render import BINS, MAX_DETAIL_ROWS, ROW_INTERVAL_CAP

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "report-screenshot.png"
CHROMIUM = os.environ.get("SWAYSIM_CHROMIUM", "/usr/bin/chromium")
VERDICTS = ("PASS", "FAIL", "WARN", "PASS", "ERROR", "SKIP")


class RenumberedWriter:
    """A JSONL sink that renames tasks ``name#1``, ``name#2``... in order of appearance.

    anyio task ids are memory addresses; renumbering makes the report (and so
    the committed screenshot) identical from run to run.
    """

    def __init__(self, writer: JsonlTraceWriter) -> None:
        self.writer = writer
        self.names: dict[str, str] = {}

    def emit(self, event: TraceEvent) -> None:
        task = self.names.get(event.task)
        if task is None:
            name = event.task.rpartition("#")[0]
            task = self.names[event.task] = f"{name}#{len(self.names) + 1}"
        self.writer.emit(
            TraceEvent(
                event.kind,
                event.time,
                task,
                event.view,
                event.op,
                event.prompt_hash,
                event.hit,
                event.duration,
                event.detail,
            )
        )


def make_run_dir(
    run_dir: Path, *, workers: int = 6, prompts: int = 12, message: str = "", task_name: str = ""
) -> Path:
    """A run directory as ``swaysim run --trace`` writes it, from a backend driven directly.

    Each worker is one probe: it enters base or ft, scores ``prompts`` prompts
    (retrying transient faults) and reports a verdict; probe and retry events
    go through the same sink, stamped with the backend's clock.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with JsonlTraceWriter(run_dir / "trace.jsonl") as writer:
        sink = RenumberedWriter(writer)
        backend = AsyncDummyDifferentialBackend(
            latency=LatencyPlan(
                seed=3, default=LogNormal(median=0.05, sigma=0.5), view_switch=Constant(0.5)
            ),
            faults=FaultPlan(
                (FaultRule("transient", name="flaky-ft", views=("ft",), probability=0.2),), seed=3
            ),
            trace=sink,
        )
        results: list[dict[str, Any]] = []

        def emit(kind: str, **fields: Any) -> None:
            task = anyio.get_current_task()
            sink.emit(TraceEvent(kind, backend.loop_time(), f"{task.name}#{task.id}", **fields))

        async def probe(index: int) -> None:
            name = f"probe-{index}"
            kind = "delta_kl" if index % 2 else "adapter_ablation"
            verdict = VERDICTS[index % len(VERDICTS)]
            emit("probe_start", detail={"probe": name, "probe_kind": kind})
            start = backend.loop_time()
            enter = backend.as_base if index % 2 else backend.as_finetuned
            async with enter() as view:
                for item in range(prompts):
                    for attempt in range(1, 4):
                        try:
                            await view.next_token_dist(f"{name} q{item % 5}", top_k=8)
                            break
                        except InjectedFault as exc:
                            error = type(exc).__name__
                            detail = {"probe": name, "attempt": attempt, "error": error}
                            emit("retry", view=view.id, op="next_token_dist", detail=detail)
            duration = backend.loop_time() - start
            detail = {"probe": name, "probe_kind": kind, "verdict": verdict}
            emit("probe_end", duration=duration, detail=detail)
            results.append(
                {
                    "name": name,
                    "kind": kind,
                    "verdict": verdict,
                    "score": 0.5 + index / 20,
                    "raw": 0.125 * index,
                    "z": 3.25 if verdict == "PASS" else None,
                    "message": message or f"{kind} measured on {prompts} prompts",
                    "duration": duration,
                }
            )

        async def main() -> float:
            async with anyio.create_task_group() as group:
                for index in range(workers):
                    group.start_soon(probe, index, name=task_name or f"worker-{index}")
            return backend.loop_time()

        makespan = run(main, backend="asyncio")
    results_doc = {
        "scenario": "report-demo",
        "loop": "asyncio",
        "seed": 3,
        "probes": sorted(results, key=lambda r: r["name"]),
        "statistics": backend.statistics().to_dict(),
        "makespan": makespan,
    }
    (run_dir / "results.json").write_text(json.dumps(results_doc), encoding="utf-8")
    return run_dir


def report_of(run_dir: Path) -> str:
    output = run_dir / "report.html"
    write_report(run_dir, output)
    return output.read_text(encoding="utf-8")


def trace_run_dir(run_dir: Path, events: list[TraceEvent]) -> Path:
    """A run directory holding only a trace of ``events`` (no results.json)."""
    run_dir.mkdir(parents=True)
    with JsonlTraceWriter(run_dir / "trace.jsonl") as writer:
        for trace_event in events:
            writer.emit(trace_event)
    return run_dir


def timeline_data(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>', page)
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_the_report_is_self_contained(tmp_path: Path) -> None:
    page = report_of(make_run_dir(tmp_path / "run"))
    lowered = page.lower()
    for forbidden in ("http:", "https:", "//cdn", "@import", "url(", " src=", "@font-face"):
        assert forbidden not in lowered, forbidden
    assert "content-security-policy" in lowered
    assert "default-src 'none'" in page
    links = re.findall(r"<link[^>]*>", page)
    assert links == ['<link rel="icon" href="data:,">']
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == ['<script type="application/json" id="timeline-data">', "<script>"]


def test_the_report_shows_probes_statistics_and_the_trace_summary(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    page = report_of(run_dir)
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    for probe in results["probes"]:
        assert f"<td>{probe['name']}</td>" in page
    for statistic in results["statistics"]:
        assert f"<td>{statistic}</td>" in page
    for heading in ("View occupancy", "Ops and cache", "Slowest ops", "Faults fired", "Probe time"):
        assert heading in page
    assert "flaky-ft" in page
    data = timeline_data(page)
    groups = {group["name"]: [row["name"] for row in group["rows"]] for group in data["groups"]}
    assert groups["views"] == ["ft", "base"]
    assert groups["waiting"] == ["waiting"]
    assert groups["tasks"] == [f"worker-{i}" for i in range(6)]
    assert groups["probes"] == [f"probe-{i}" for i in range(6)]
    assert data["faults"]["mode"] == "points"
    assert len(data["faults"]["t"]) == results["statistics"]["faults_fired"]["flaky-ft"]


def test_the_legend_names_every_colour_the_timeline_draws(tmp_path: Path) -> None:
    page = report_of(make_run_dir(tmp_path / "run"))
    legend = re.search(r'<div class="legend">(.*?)</div>', page)
    assert legend is not None
    named = dict(re.findall(r'<i style="background:(#[0-9a-f]{6})"></i>([^<]+)</span>', legend[1]))
    drawn = {
        layer["color"]
        for group in timeline_data(page)["groups"]
        for row in group["rows"]
        for layer in row["layers"]
    }
    assert drawn <= set(named), drawn - set(named)
    assert named["#9ca3af"] == "SKIP"


def test_text_from_the_run_is_escaped(tmp_path: Path) -> None:
    evil = "</script><script>alert('x')</script> & <b>"
    page = report_of(make_run_dir(tmp_path / "run", workers=2, message=evil, task_name=evil))
    assert evil not in page
    assert (
        "&lt;/script&gt;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;" in page
    )
    assert page.count("</script>") == 2
    assert any(evil in text for text in timeline_data(page)["strings"])


def test_tasks_that_share_a_name_are_numbered(tmp_path: Path) -> None:
    page = report_of(make_run_dir(tmp_path / "run", workers=3, prompts=2, task_name="worker"))
    groups = {group["name"]: group["rows"] for group in timeline_data(page)["groups"]}
    assert [row["name"] for row in groups["tasks"]] == ["worker (1)", "worker (2)", "worker (3)"]


def synthetic_ops(count: int, seed: int = 11) -> tuple[list[TraceEvent], float]:
    """One task doing ``count`` back-to-back ops of random length on one held view."""
    durations = np.random.default_rng(seed).exponential(0.01, size=count)
    events = [TraceEvent("view_enter", 0.0, "busy#1", view="base")]
    now = 0.0
    for index, duration in enumerate(durations.tolist()):
        events.append(TraceEvent("op_start", now, "busy#1", view="base", op="generate"))
        now += duration
        hit = index % 3 == 0
        events.append(
            TraceEvent(
                "op_end", now, "busy#1", view="base", op="generate", hit=hit, duration=duration
            )
        )
    events.append(TraceEvent("view_exit", now, "busy#1", view="base", duration=now))
    return events, float(durations.sum())


def test_a_busy_row_is_binned_and_keeps_its_busy_time(tmp_path: Path) -> None:
    events, busy = synthetic_ops(ROW_INTERVAL_CAP + 5_000)
    page = report_of(trace_run_dir(tmp_path / "run", events))
    assert "binned into 4000 time bins" in page
    data = timeline_data(page)
    rows = {row["name"]: row for group in data["groups"] for row in group["rows"]}
    view_layer = rows["base"]["layers"][0]
    assert view_layer["mode"] == "intervals"
    assert (view_layer["s"], view_layer["e"]) == ([0.0], [round(busy, 9)])
    layers = {layer["name"]: layer for layer in rows["busy"]["layers"]}
    assert {layer["mode"] for layer in layers.values()} == {"bins"}
    assert all(len(layer["v"]) == BINS for layer in layers.values())
    # Coverage per bin times the bin width adds back up to the time the ops took.
    bin_width = (data["t1"] - data["t0"]) / BINS
    binned_busy = sum(sum(layer["v"]) for layer in layers.values()) * bin_width
    assert binned_busy == pytest.approx(busy, rel=1e-4)
    assert max(max(layer["v"]) for layer in layers.values()) <= 1.0 + 1e-6
    # A binned row keeps no labels: every string on the page is one an exact interval uses.
    used = {
        label
        for row in rows.values()
        for layer in row["layers"]
        if layer["mode"] == "intervals"
        for label in layer["label"]
    }
    assert set(range(len(data["strings"]))) == used | set(data["faults"]["label"])
    assert len(page) < 1_000_000


def test_more_tasks_and_probes_than_detail_rows_share_aggregate_rows(tmp_path: Path) -> None:
    workers = MAX_DETAIL_ROWS + 5
    page = report_of(make_run_dir(tmp_path / "run", workers=workers, prompts=2))
    data = timeline_data(page)
    groups = {group["name"]: group["rows"] for group in data["groups"]}
    assert [row["name"] for row in groups["tasks"]] == ["ops running"]
    assert [row["name"] for row in groups["probes"]] == ["probes running"]
    probes = groups["probes"][0]["layers"]
    assert [layer["name"] for layer in probes] == ["probe"]
    assert len(probes[0]["s"]) == workers
    ops = sum(len(layer["s"]) for layer in groups["tasks"][0]["layers"])
    assert ops == sum(e.kind == "op_end" for e in read_trace(tmp_path / "run" / "trace.jsonl"))
    assert f"{workers} tasks: more than {MAX_DETAIL_ROWS}" in page
    assert f"{workers} probes: drawn as one row" in page


def test_a_run_of_ten_thousand_events_stays_a_small_page(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run", workers=8, prompts=700)
    with (run_dir / "trace.jsonl").open(encoding="utf-8") as trace:
        events = sum(1 for _ in trace)
    assert events > 10_000
    page = report_of(run_dir)
    # Tables are per view, probe, op name and rule, never per event.
    assert page.count("<tr>") < 100
    assert len(page) < 2_000_000


def test_write_report_names_what_is_missing_or_broken(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="must be an existing directory"):
        write_report(tmp_path / "absent", tmp_path / "r.html")
    with pytest.raises(InvalidArgumentError, match=r"has no trace\.jsonl"):
        write_report(tmp_path, tmp_path / "r.html")
    (tmp_path / "trace.jsonl").write_text(
        '{"v":1,"kind":"view_enter","time":0,"task":"t#1","view":"base"}\n', encoding="utf-8"
    )
    (tmp_path / "results.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidArgumentError, match=r"results\.json is not valid JSON"):
        write_report(tmp_path, tmp_path / "r.html")
    (tmp_path / "results.json").unlink()
    write_report(tmp_path, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No results.json in the run directory" in page


# -- a real browser --------------------------------------------------------------------


class Chromium:
    """Headless chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, executable: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="swaysim-chromium-")
        to_child, self._to_browser = os.pipe()
        self._from_browser, from_child = os.pipe()
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
            "--font-render-hinting=none",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{to_child} 4>&{from_child}', "bash", executable, *flags],
            pass_fds=(to_child, from_child),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60.0
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60.0
        while True:
            for index, message in enumerate(self.events):
                if message.get("method") == method:
                    return self.events.pop(index)
            self.events.append(self._read(deadline))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer within 60 s")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One tab, recording console messages, exceptions, log errors and requests."""

    WIDTH = 1400
    HEIGHT = 1000

    def __init__(self, browser: Chromium) -> None:
        self.browser = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        self.session: str = attached["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.WIDTH, "height": self.HEIGHT, "deviceScaleFactor": 1, "mobile": False},
        )

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session)

    def load(self, path: Path) -> None:
        self.browser.events.clear()
        self.send("Page.navigate", {"url": path.resolve().as_uri()})
        self.browser.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression!r} threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def problems(self, allowed_url: str) -> list[str]:
        """Console errors, uncaught exceptions, error log entries and foreign requests."""
        found = []
        for message in self.browser.events:
            method = message.get("method")
            params = message.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                texts = [str(arg.get("value", arg.get("description"))) for arg in params["args"]]
                found.append(f"console.{params['type']}: {' '.join(texts)}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry']['text']}")
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if url != allowed_url and not url.startswith("data:"):
                    found.append(f"request: {url}")
        return found

    def screenshot(self) -> bytes:
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        clip = {"x": 0, "y": 0, "width": self.WIDTH, "height": height, "scale": 1}
        shot = self.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        return base64.b64decode(shot["data"])


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    if not Path(CHROMIUM).is_file():
        reason = f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does it)"
        if os.environ.get("SWAYSIM_REQUIRE_CHROMIUM"):
            pytest.fail(f"SWAYSIM_REQUIRE_CHROMIUM is set but {reason}")
        pytest.skip(reason)
    browser = Chromium(CHROMIUM)
    try:
        yield Page(browser)
    finally:
        browser.close()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


PAINTED = """(() => {
  const c = document.getElementById("timeline");
  const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] > 0 && (px[i] < 200 || px[i + 1] < 200 || px[i + 2] < 200)) painted++;
  }
  return painted;
})()"""


def test_the_harness_catches_console_errors_exceptions_and_requests(
    page: Page, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><title>bad</title><img src='http://127.0.0.1:9/x.png'>"
        "<script>console.error('boom'); null.x;</script>",
        encoding="utf-8",
    )
    page.load(bad)
    found = page.problems(bad.resolve().as_uri())
    assert any(p.startswith("console.error: boom") for p in found), found
    assert any(p.startswith("exception:") for p in found), found
    assert any(p.startswith("request: http://127.0.0.1:9/x.png") for p in found), found


def load_report(page: Page, run_dir: Path, *, max_elements: int = 1_000) -> Path:
    """Write ``run_dir``'s report, load it, and check the timeline drew and the DOM is small.

    The DOM grows with the tables (per probe, view, op name and rule), never per event.
    """
    output = run_dir / "report.html"
    write_report(run_dir, output)
    page.load(output)
    assert page.evaluate("document.body.dataset.timelineReady") == "1"
    assert page.evaluate(PAINTED) > 5_000
    assert page.evaluate("document.getElementsByTagName('*').length") < max_elements
    return output


def test_the_report_renders_in_chromium_without_errors(page: Page, tmp_path: Path) -> None:
    output = load_report(page, make_run_dir(tmp_path / "run"))
    assert page.evaluate("document.getElementById('range').textContent").endswith("(100.0%)")
    shot = page.screenshot()
    assert page.problems(output.resolve().as_uri()) == []
    width, height = png_size(shot)
    assert width == Page.WIDTH
    assert height > Page.HEIGHT
    SCREENSHOT.parent.mkdir(exist_ok=True)
    if not SCREENSHOT.is_file() or SCREENSHOT.read_bytes() != shot:
        SCREENSHOT.write_bytes(shot)

    # Zooming and panning redraw without errors.
    page.evaluate("document.getElementById('zoom-in').click()")
    assert page.evaluate("document.getElementById('range').textContent").endswith("(50.0%)")
    page.evaluate("document.getElementById('pan-right').click()")
    page.evaluate("document.getElementById('zoom-out').click()")
    page.evaluate("document.getElementById('zoom-reset').click()")
    assert page.evaluate("document.getElementById('range').textContent").endswith("(100.0%)")
    assert page.problems(output.resolve().as_uri()) == []


def test_a_report_of_a_binned_run_renders_without_errors(page: Page, tmp_path: Path) -> None:
    events, _ = synthetic_ops(ROW_INTERVAL_CAP + 5_000)
    output = load_report(page, trace_run_dir(tmp_path / "run", events))
    for _ in range(12):
        page.evaluate("document.getElementById('zoom-in').click()")
    assert page.evaluate(PAINTED) > 1_000
    assert page.problems(output.resolve().as_uri()) == []


def test_a_report_with_aggregate_rows_renders_without_errors(page: Page, tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run", workers=MAX_DETAIL_ROWS + 5, prompts=2)
    # Two tables of 45 probes: about 20 elements per probe.
    output = load_report(page, run_dir, max_elements=2_000)
    page.evaluate("document.getElementById('zoom-in').click()")
    assert page.problems(output.resolve().as_uri()) == []
