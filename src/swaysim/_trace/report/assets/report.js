"use strict";
(function () {
  const data = JSON.parse(document.getElementById("timeline-data").textContent);
  const canvas = document.getElementById("timeline");
  const tooltip = document.getElementById("tooltip");
  const rangeText = document.getElementById("range");
  const ctx = canvas.getContext("2d");
  const GUTTER = 170, ROW = 18, HEADER = 16, AXIS = 24, PAD = 8;
  const t0 = data.t0, t1 = data.t1, nBins = data.bins;
  const minSpan = Math.max((t1 - t0) * 1e-7, 1e-9);
  let v0 = t0, v1 = t1, width = 600;
  // A stretch an expectation's "show on timeline" link points at: shaded, its row outlined.
  let mark = null;

  // Layout: group headers and rows, top to bottom; faults last.
  const lines = [];
  for (const group of data.groups) {
    if (!group.rows.length) continue;
    lines.push({ kind: "header", name: group.name });
    for (const row of group.rows) lines.push({ kind: "row", name: row.name, row: row });
  }
  lines.push({ kind: "header", name: "faults" });
  lines.push({ kind: "faults", name: "fired" });
  let y = AXIS;
  for (const line of lines) {
    line.y = y;
    line.h = line.kind === "header" ? HEADER : ROW;
    y += line.h;
  }
  const height = y + PAD;

  function coverage(layer, a, b, w) {
    const cov = new Float64Array(w);
    const seen = new Uint8Array(w);
    const scale = w / (b - a);
    if (layer.mode === "bins") {
      const bw = (t1 - t0) / nBins, v = layer.v;
      for (let p = 0; p < w; p++) {
        const ta = a + p / scale, tb = a + (p + 1) / scale;
        let i = Math.max(0, Math.floor((ta - t0) / bw));
        const last = Math.min(nBins - 1, Math.floor((tb - t0) / bw));
        let sum = 0;
        for (; i <= last; i++) {
          const lo = Math.max(ta, t0 + i * bw), hi = Math.min(tb, t0 + (i + 1) * bw);
          if (hi > lo) sum += v[i] * (hi - lo);
        }
        cov[p] = sum / (tb - ta);
        if (sum > 0) seen[p] = 1;
      }
      return { cov: cov, seen: seen };
    }
    const s = layer.s, e = layer.e;
    for (let k = 0; k < s.length; k++) {
      if (s[k] > b) break;
      if (e[k] < a) continue;
      const x0 = (Math.max(s[k], a) - a) * scale, x1 = (Math.min(e[k], b) - a) * scale;
      const p0 = Math.max(0, Math.floor(x0)), p1 = Math.min(w - 1, Math.floor(x1));
      if (p0 === p1) {
        cov[p0] += x1 - x0;
        seen[p0] = 1;
        continue;
      }
      cov[p0] += p0 + 1 - x0;
      seen[p0] = 1;
      for (let p = p0 + 1; p < p1; p++) { cov[p] += 1; seen[p] = 1; }
      cov[p1] += x1 - p1;
      seen[p1] = 1;
    }
    return { cov: cov, seen: seen };
  }

  function niceStep(span, pixels) {
    const raw = span / Math.max(1, pixels / 110);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  function fmt(t, step) {
    const digits = Math.max(0, Math.min(9, -Math.floor(Math.log10(step || 1)) + 1));
    return t.toFixed(digits) + " s";
  }

  function faultCounts(a, b, w) {
    const counts = new Float64Array(w);
    const scale = w / (b - a);
    const f = data.faults;
    if (f.mode === "bins") {
      const bw = (t1 - t0) / nBins;
      for (let i = 0; i < f.v.length; i++) {
        if (!f.v[i]) continue;
        const mid = t0 + (i + 0.5) * bw;
        if (mid < a || mid > b) continue;
        counts[Math.min(w - 1, Math.floor((mid - a) * scale))] += f.v[i];
      }
    } else {
      for (const t of f.t) {
        if (t < a || t > b) continue;
        counts[Math.min(w - 1, Math.floor((t - a) * scale))] += 1;
      }
    }
    return counts;
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const cssWidth = Math.max(400, canvas.parentElement.clientWidth - 2);
    width = cssWidth - GUTTER - PAD;
    canvas.style.height = height + "px";
    canvas.width = Math.floor(cssWidth * dpr);
    canvas.height = Math.floor(height * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssWidth, height);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    const w = Math.max(1, Math.floor(width));
    const step = niceStep(v1 - v0, w);
    // Axis and grid.
    ctx.fillStyle = "#6b7280";
    ctx.strokeStyle = "#f3f4f6";
    for (let t = Math.ceil(v0 / step) * step; t <= v1; t += step) {
      const x = GUTTER + ((t - v0) / (v1 - v0)) * w;
      const text = fmt(t, step);
      if (x + 3 + ctx.measureText(text).width <= cssWidth) ctx.fillText(text, x + 3, AXIS / 2);
      ctx.beginPath();
      ctx.moveTo(x + 0.5, AXIS - 4);
      ctx.lineTo(x + 0.5, height - PAD);
      ctx.stroke();
    }
    const faults = faultCounts(v0, v1, w);
    for (const line of lines) {
      if (line.kind === "header") {
        ctx.fillStyle = "#111827";
        ctx.font = "600 12px system-ui, sans-serif";
        ctx.fillText(line.name, 6, line.y + line.h / 2);
        ctx.font = "12px system-ui, sans-serif";
        continue;
      }
      ctx.fillStyle = "#fafafa";
      ctx.fillRect(GUTTER, line.y + 1, w, line.h - 2);
      ctx.fillStyle = "#374151";
      const label = line.name.length > 24 ? line.name.slice(0, 23) + "\u2026" : line.name;
      ctx.fillText(label, 14, line.y + line.h / 2);
      if (line.kind === "faults") {
        let top = 0;
        for (let p = 0; p < w; p++) top = Math.max(top, faults[p]);
        ctx.fillStyle = "#ef4444";
        for (let p = 0; p < w; p++) {
          if (!faults[p]) continue;
          const h = Math.max(4, ((line.h - 2) * faults[p]) / top);
          ctx.fillRect(GUTTER + p, line.y + line.h - 1 - h, 1, h);
        }
        continue;
      }
      const layers = line.row.layers.map((layer) => ({
        layer: layer,
        c: coverage(layer, v0, v1, w),
      }));
      let top = 1;
      for (let p = 0; p < w; p++) {
        let total = 0;
        for (const l of layers) total += l.c.cov[p];
        top = Math.max(top, total);
      }
      for (let p = 0; p < w; p++) {
        let base = line.y + line.h - 1;
        for (const l of layers) {
          if (!l.c.seen[p]) continue;
          const h = Math.max(1.5, ((line.h - 2) * l.c.cov[p]) / top);
          ctx.fillStyle = l.layer.color;
          ctx.fillRect(GUTTER + p, base - h, 1, h);
          base -= h;
        }
      }
      if (top > 1.001) {
        ctx.fillStyle = "#6b7280";
        ctx.fillText("max " + top.toFixed(top < 10 ? 1 : 0), GUTTER - 52, line.y + line.h / 2);
      }
    }
    // Faults marked across every row.
    ctx.fillStyle = "rgba(239, 68, 68, 0.28)";
    for (let p = 0; p < w; p++) {
      if (faults[p]) ctx.fillRect(GUTTER + p, AXIS, 1, height - AXIS - PAD);
    }
    if (mark) drawMark(w);
    rangeText.textContent =
      "showing " + fmt(v0, step) + " \u2013 " + fmt(v1, step) + " of " + fmt(t1 - t0, step) +
      " (" + ((100 * (v1 - v0)) / (t1 - t0)).toFixed(1) + "%)";
  }

  function drawMark(w) {
    const x0 = Math.max(0, ((mark.a - v0) / (v1 - v0)) * w);
    const x1 = Math.min(w, ((mark.b - v0) / (v1 - v0)) * w);
    if (x1 >= 0 && x0 <= w) {
      ctx.fillStyle = "rgba(250, 204, 21, 0.22)";
      ctx.fillRect(GUTTER + x0, AXIS, Math.max(2, x1 - x0), height - AXIS - PAD);
    }
    for (const line of lines) {
      if (line.kind === "header" || line.name !== mark.row) continue;
      ctx.strokeStyle = "#ca8a04";
      ctx.lineWidth = 2;
      ctx.strokeRect(2, line.y + 1, GUTTER + w - 2, line.h - 2);
      ctx.lineWidth = 1;
    }
  }

  function focus(a, b, row) {
    const span = Math.max(b - a, (t1 - t0) * 0.002, minSpan);
    mark = { a: a, b: b, row: row };
    setWindow(a - span * 0.25, a + span * 1.25);
    document.body.dataset.focused = row || "";
    canvas.scrollIntoView({ block: "center" });
  }

  function setWindow(a, b) {
    let span = Math.max(minSpan, Math.min(t1 - t0, b - a));
    a = Math.max(t0, Math.min(a, t1 - span));
    v0 = a;
    v1 = a + span;
    draw();
  }

  function zoom(factor, center) {
    const c = center === undefined ? (v0 + v1) / 2 : center;
    setWindow(c - (c - v0) * factor, c + (v1 - c) * factor);
  }

  function timeAt(x) {
    return v0 + ((x - GUTTER) / width) * (v1 - v0);
  }

  function lineAt(y) {
    for (const line of lines) if (y >= line.y && y < line.y + line.h) return line;
    return null;
  }

  function describe(line, t) {
    const out = [];
    const tol = (2 * (v1 - v0)) / width;
    if (line.kind === "faults") {
      const f = data.faults;
      if (f.mode === "points") {
        for (let k = 0; k < f.t.length && out.length < 6; k++) {
          if (Math.abs(f.t[k] - t) <= tol) out.push(data.strings[f.label[k]] + " @ " + f.t[k]);
        }
      } else {
        out.push("faults are binned; see the table below");
      }
      return out;
    }
    for (const layer of line.row.layers) {
      if (layer.mode !== "intervals") {
        const c = coverage(layer, t - tol / 2, t + tol / 2, 1);
        if (c.cov[0] > 0) out.push(layer.name + ": " + c.cov[0].toFixed(2) + " (binned average)");
        continue;
      }
      for (let k = 0; k < layer.s.length && out.length < 8; k++) {
        if (layer.s[k] > t + tol) break;
        if (layer.e[k] + tol < t) continue;
        const text = data.strings[layer.label[k]];
        out.push(text + "  [" + layer.s[k] + " \u2013 " + layer.e[k] + " s]");
      }
    }
    return out;
  }

  let drag = null;
  canvas.addEventListener("mousedown", (ev) => {
    drag = { x: ev.offsetX, v0: v0, v1: v1 };
    canvas.classList.add("dragging");
  });
  window.addEventListener("mouseup", () => {
    drag = null;
    canvas.classList.remove("dragging");
  });
  canvas.addEventListener("mousemove", (ev) => {
    if (drag) {
      const shift = ((ev.offsetX - drag.x) / width) * (drag.v1 - drag.v0);
      setWindow(drag.v0 - shift, drag.v1 - shift);
      return;
    }
    const line = lineAt(ev.offsetY);
    if (!line || line.kind === "header" || ev.offsetX < GUTTER) {
      tooltip.hidden = true;
      return;
    }
    const t = timeAt(ev.offsetX);
    const details = describe(line, t);
    tooltip.textContent =
      line.name + " @ " + t.toFixed(6) + " s" + (details.length ? "\n" + details.join("\n") : "");
    tooltip.hidden = false;
    tooltip.style.left = Math.min(ev.offsetX + 14, canvas.clientWidth - 300) + "px";
    tooltip.style.top = ev.offsetY + 14 + "px";
  });
  canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });
  canvas.addEventListener("wheel", (ev) => {
    if (ev.offsetX < GUTTER) return;
    ev.preventDefault();
    zoom(ev.deltaY > 0 ? 1.25 : 0.8, timeAt(ev.offsetX));
  }, { passive: false });
  canvas.addEventListener("dblclick", (ev) => zoom(0.5, timeAt(ev.offsetX)));
  document.getElementById("zoom-in").addEventListener("click", () => zoom(0.5));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(2));
  document.getElementById("zoom-reset").addEventListener("click", () => {
    mark = null;
    setWindow(t0, t1);
  });
  function pan(fraction) {
    const shift = (v1 - v0) * fraction;
    setWindow(v0 + shift, v1 + shift);
  }
  document.getElementById("pan-left").addEventListener("click", () => pan(-0.5));
  document.getElementById("pan-right").addEventListener("click", () => pan(0.5));
  window.addEventListener("resize", draw);
  for (const link of document.querySelectorAll("a.spot")) {
    link.addEventListener("click", (ev) => {
      ev.preventDefault();
      focus(Number(link.dataset.t0), Number(link.dataset.t1), link.dataset.row || null);
    });
  }
  draw();
  document.body.dataset.timelineReady = "1";
})();
