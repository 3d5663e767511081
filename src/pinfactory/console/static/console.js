// pinfactory console: the live stream, charts (uPlot) and small form helpers.
// No inline scripts (the pages' Content-Security-Policy forbids them).
(function () {
  "use strict";
  var PALETTE = ["#2563eb", "#16a34a", "#db2777", "#ea580c", "#7c3aed", "#0891b2", "#ca8a04", "#64748b"];

  function startStream(body) {
    var keep = parseInt(body.dataset.keep || "50", 10);
    var state = document.getElementById("live-state");
    var source = new EventSource(body.dataset.stream);
    source.addEventListener("rows", function (event) {
      var empty = document.getElementById("live-empty");
      if (empty) { empty.remove(); }
      body.insertAdjacentHTML("afterbegin", event.data);
      Array.prototype.forEach.call(body.querySelectorAll("tr.fresh"), function (tr) { tr.classList.remove("fresh"); });
      var count = (event.data.match(/<tr/g) || []).length;
      for (var i = 0; i < count && i < body.rows.length; i++) { body.rows[i].classList.add("fresh"); }
      while (body.rows.length > keep) { body.deleteRow(body.rows.length - 1); }
      document.body.dataset.streamed = String(parseInt(document.body.dataset.streamed || "0", 10) + count);
    });
    source.addEventListener("open", function () { if (state) { state.className = "pulse"; state.textContent = "live"; } });
    source.addEventListener("error", function () { if (state) { state.className = "pulse off"; state.textContent = "reconnecting"; } });
  }

  function money(v) {
    if (v === null || v === undefined) { return ""; }
    return "$" + (v >= 1 ? v.toFixed(2) : v >= 0.01 ? v.toFixed(4) : v.toPrecision(2));
  }

  function drawChart(el) {
    var spec = JSON.parse(el.dataset.chart);
    var names = Object.keys(spec.series);
    if (!spec.starts.length || typeof uPlot === "undefined") { return; }
    var isMoney = el.dataset.unit === "$";
    var data = [spec.starts].concat(names.map(function (n) { return spec.series[n]; }));
    var series = [{}].concat(names.map(function (n, i) {
      var colour = PALETTE[i % PALETTE.length];
      return { label: n, stroke: colour, width: 2, fill: colour + "18", points: { show: spec.starts.length < 40 },
               value: function (u, v) { return isMoney ? money(v) : v; } };
    }));
    var opts = {
      width: Math.max(el.clientWidth, 280), height: 220, series: series,
      scales: { x: { time: true } },
      axes: [{ stroke: "#475569", grid: { stroke: "#e2e8f0" } },
             { stroke: "#475569", grid: { stroke: "#e2e8f0" }, size: 64,
               values: function (u, vals) { return vals.map(function (v) { return isMoney ? money(v) : v; }); } }],
      legend: { live: true }
    };
    var plot = new uPlot(opts, data, el);
    if (window.ResizeObserver) {
      new ResizeObserver(function () { plot.setSize({ width: Math.max(el.clientWidth, 280), height: 220 }); }).observe(el);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var body = document.querySelector("tbody[data-stream]");
    if (body && window.EventSource) { startStream(body); }
    Array.prototype.forEach.call(document.querySelectorAll(".chart[data-chart]"), drawChart);
    Array.prototype.forEach.call(document.querySelectorAll("select[data-autosubmit]"), function (select) {
      select.addEventListener("change", function () { select.form.requestSubmit(); });
    });
  });
})();
