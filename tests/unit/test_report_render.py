"""The HTML report as text: self-contained, escaped, aggregated for big runs.

What a real browser makes of it is tests/browser/test_report.py; the page's
assets themselves (script syntax, style sheet, markup) are checked in
tests/unit/test_report_assets.py.
"""

from __future__ import annotations

import gzip
import html
import json
import re
from typing import TYPE_CHECKING

import pytest

from report_runs import (
    make_run_dir,
    report_of,
    scenario_run_dir,
    synthetic_ops,
    timeline_data,
    trace_run_dir,
)
from swaysim import InvalidArgumentError, TraceEvent, TraceFormatError, read_trace, write_report
from swaysim._trace.report.timeline import BINS, MAX_DETAIL_ROWS, ROW_INTERVAL_CAP

if TYPE_CHECKING:
    from pathlib import Path


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
    for heading in ("View occupancy", "Tasks", "Ops and cache", "Slowest ops", "Faults fired"):
        assert heading in page
    assert "Probe time" not in page  # the results table shows the same durations
    assert "flaky-ft" in page
    data = timeline_data(page)
    groups = {group["name"]: [row["name"] for row in group["rows"]] for group in data["groups"]}
    assert groups["views"] == ["ft", "base"]
    assert groups["waiting"] == ["waiting"]
    # Named as people name them: no task id, and the views each worked in.
    assert sorted(groups["tasks"]) == sorted(
        f"worker-{i} · {'base' if i % 2 else 'ft'}" for i in range(6)
    )
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


def test_tasks_that_share_a_name_share_a_row(tmp_path: Path) -> None:
    # Task ids differ per run; the tasks of one name do one job, so they are one row.
    page = report_of(make_run_dir(tmp_path / "run", workers=3, prompts=2, task_name="worker"))
    groups = {group["name"]: group["rows"] for group in timeline_data(page)["groups"]}
    (row,) = groups["tasks"]
    assert row["name"] in ("worker · ft, base", "worker · base, ft")
    ops = sum(len(layer["s"]) for layer in row["layers"] if layer["name"] != "wait")
    assert ops == sum(e.kind == "op_end" for e in read_trace(tmp_path / "run" / "trace.jsonl"))


def test_a_busy_row_is_binned_and_keeps_its_busy_time(tmp_path: Path) -> None:
    events, busy = synthetic_ops(ROW_INTERVAL_CAP + 5_000)
    page = report_of(trace_run_dir(tmp_path / "run", events))
    assert "binned into 4000 time bins" in page
    data = timeline_data(page)
    rows = {row["name"]: row for group in data["groups"] for row in group["rows"]}
    view_layer = rows["base"]["layers"][0]
    assert view_layer["mode"] == "intervals"
    assert (view_layer["s"], view_layer["e"]) == ([0.0], [round(busy, 9)])
    layers = {layer["name"]: layer for layer in rows["busy · base"]["layers"]}
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
    assert f"{workers} task names: more than {MAX_DETAIL_ROWS}" in page
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
    with pytest.raises(TraceFormatError, match=r"results\.json: not a JSON object"):
        write_report(tmp_path, tmp_path / "r.html")
    (tmp_path / "results.json").unlink()
    write_report(tmp_path, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No results.json in the run directory" in page


def test_a_gzipped_trace_is_found_and_rendered_the_same(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run", workers=2, prompts=2)
    plain = report_of(run_dir)
    trace = run_dir / "trace.jsonl"
    with gzip.open(run_dir / "trace.jsonl.gz", "wb") as packed:
        packed.write(trace.read_bytes())
    trace.unlink()
    assert report_of(run_dir) == plain


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("probes", 7, "probes=7 must be an array"),
        ("statistics", ["not", "a", "mapping"], "statistics=['not', 'a', 'mapping'] must be"),
        ("seed", "seven", "seed='seven' must be an integer"),
        ("makespan", "long", "makespan='long' must be a number"),
        ("probes", [{"name": "p", "duration": "slow"}], "probes[0].duration='slow' must be"),
        ("probes", [{"name": ["p"]}], "probes[0].name=['p'] must be a string"),
        ("probes", ["p"], "probes[0]='p' must be an object"),
        ("statistics", {"calls_per_op": {"a": [1]}}, "statistics.calls_per_op="),
    ],
)
def test_results_fields_of_the_wrong_shape_are_one_line_naming_the_key(
    tmp_path: Path, key: str, value: object, complaint: str
) -> None:
    run_dir = make_run_dir(tmp_path / "run", workers=2, prompts=2)
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    results[key] = value
    (run_dir / "results.json").write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(TraceFormatError) as info:
        report_of(run_dir)
    message = str(info.value)
    assert message.startswith(f"{run_dir / 'results.json'}: ")
    assert complaint in message
    assert "\n" not in message


def test_a_failing_scenarios_report_says_what_it_asked_and_what_failed_first(
    tmp_path: Path,
) -> None:
    run_dir = scenario_run_dir(tmp_path / "runs")
    results = json.loads((run_dir / "results.json").read_text())
    page = report_of(run_dir)
    assert html.escape(results["description"]) in page
    assert "FAILED</span> 3 of 5 expectations held, 2 failed" in page
    section = page.split("<h2>Expectations</h2>")[1].split("<h2>")[0]
    statuses = re.findall(r'<span class="verdict \w+">(ok|failed|n/a)</span>', section)
    assert statuses == ["failed", "failed", "ok", "ok", "ok"]
    keys = re.findall(r"<td><code>([^<]+)</code></td>", section)
    failed = [e["key"] for e in results["expectations"] if e["status"] == "failed"]
    assert [html.unescape(key) for key in keys[:2]] == failed
    # Each failure links to its evidence on the timeline: the probe, the retries.
    links = re.findall(
        r'class="spot" data-t0="([^"]+)" data-t1="([^"]+)"(?: data-row="([^"]*)")?', section
    )
    assert len(links) == 5
    (start, end, row), (retry_start, retry_end, _) = links[:2]
    assert row == "dkl-0"
    assert float(start) <= float(end)
    assert 0.0 < float(retry_start) <= float(retry_end) <= results["makespan"]
    assert "Replay: <code>swaysim run " in page


def test_a_version_1_results_file_still_renders(tmp_path: Path) -> None:
    run_dir = scenario_run_dir(tmp_path / "runs")
    document = json.loads((run_dir / "results.json").read_text())
    old = {
        key: document[key]
        for key in ("scenario", "loop", "seed", "probes", "statistics", "makespan")
    }
    (run_dir / "results.json").write_text(json.dumps(old))
    page = report_of(run_dir)
    assert "<td>dkl-0</td>" in page
    assert "No expectations in results.json" in page
    assert html.escape(document["description"]) not in page


def test_prompt_text_is_escaped(tmp_path: Path) -> None:
    evil = "<img src=x onerror=alert(1)> & friends"
    events = [
        TraceEvent("prompt", 0.0, "w#1", prompt_hash="abc123abc123", detail={"text": evil}),
        TraceEvent("op_start", 0.0, "w#1", view="base", op="generate", prompt_hash="abc123abc123"),
        TraceEvent(
            "op_end",
            1.0,
            "w#1",
            view="base",
            op="generate",
            prompt_hash="abc123abc123",
            hit=False,
            duration=1.0,
        ),
    ]
    page = report_of(trace_run_dir(tmp_path / "run", events))
    assert evil not in page
    assert '<span class="prompt" title="prompt hash abc123abc123">' + html.escape(evil) in page
