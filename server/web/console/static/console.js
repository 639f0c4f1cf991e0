// The operator console's script: no build step, no library. The CSP allows only this file
// (no inline scripts), so pages hand data over in data-* attributes.
"use strict";

(function () {
  function each(selector, fn, root) {
    Array.prototype.forEach.call((root || document).querySelectorAll(selector), fn);
  }

  function fmtInt(n) { return Number(n).toLocaleString("en-US"); }
  function pct(x) { return (Number(x) * 100).toFixed(1) + "%"; }
  function when(ms) {
    if (!ms) { return "—"; }
    return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }
  function setText(selector, text) { each(selector, function (el) { el.textContent = text; }); }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  }

  function emptyRow(tbody, cols, text) {
    var tr = document.createElement("tr");
    tr.className = "empty";
    var td = cell(tr, text, "muted");
    td.colSpan = cols;
    tbody.appendChild(tr);
  }

  // --- the overview: redraw from each server-sent event --------------------------------
  function drawOverview(f) {
    var statuses = f.orders_by_status, max = 1, name;
    for (name in statuses) { if (statuses[name] > max) { max = statuses[name]; } }
    for (name in statuses) {
      setText('[data-status="' + name + '"]', String(statuses[name]));
      each('[data-bar="' + name + '"]', function (el) {
        el.setAttribute("width", (statuses[name] * 100 / max).toFixed(2));
      });
    }
    setText('[data-figure="at"]', when(f.at));
    setText('[data-figure="orders_total"]', fmtInt(f.orders_total));
    setText('[data-figure="orders_per_second"]', Number(f.orders_per_second).toFixed(2));
    ["fill_rate", "split_rate", "on_time_delivery_rate", "return_rate"].forEach(function (k) {
      setText('[data-figure="' + k + '"]', pct(f.rates[k]));
    });
    setText('[data-figure="pick_distance_saved_m"]', fmtInt(Math.round(f.pick_distance_saved_m)));
    setText('[data-figure="mean_allocation_distance_km"]', String(f.mean_allocation_distance_km));
    setText('[data-figure="waves"]', fmtInt(f.waves));
    var e = f.exceptions;
    setText('[data-figure="exceptions_total"]', String(e.total));
    setText('[data-figure="exceptions_on_hold"]', String(e.on_hold));
    setText('[data-figure="exceptions_backordered"]', String(e.backordered));
    setText('[data-figure="exceptions_shipment"]',
            e.shipment_exceptions === null ? "—" : String(e.shipment_exceptions));
    drawChart(f.orders_per_minute);
    drawChannels(f.orders_by_channel);
    drawSync(f.channels);
  }

  function drawChart(perMinute) {
    each('[data-chart="opm"]', function (svg) {
      var h = Number(svg.getAttribute("data-height")), top = 1;
      perMinute.forEach(function (v) { if (v > top) { top = v; } });
      setText('[data-figure="opm_top"]', String(top));
      each("rect[data-i]", function (r) {
        var v = perMinute[Number(r.getAttribute("data-i"))] || 0;
        var bh = Math.round(v * h / top);
        r.setAttribute("y", String(h - bh));
        r.setAttribute("height", String(bh));
        var t = r.querySelector("title");
        if (t) { t.textContent = v + " orders, " + (60 - Number(r.getAttribute("data-i"))) + " min ago"; }
      }, svg);
    });
  }

  function drawChannels(rows) {
    each('[data-list="orders_by_channel"]', function (tbody) {
      tbody.textContent = "";
      rows.forEach(function (c) {
        var tr = document.createElement("tr");
        cell(tr, c.channel);
        cell(tr, String(c.count), "num").setAttribute("data-channel", c.channel);
        tbody.appendChild(tr);
      });
      if (!rows.length) { emptyRow(tbody, 2, "No orders yet"); }
    });
  }

  function drawSync(rows) {
    each('[data-list="channels"]', function (tbody) {
      tbody.textContent = "";
      rows.forEach(function (c) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-sync", c.channel_id);
        cell(tr, c.channel_id);
        var state = document.createElement("span"), td = cell(tr, "");
        if (c.stale) { state.className = "pill warn"; state.textContent = "stale"; }
        else if (c.last_error && c.last_error_at >= c.last_push_at) {
          state.className = "pill bad"; state.textContent = "failing";
        } else { state.className = "pill ok"; state.textContent = "in sync"; }
        td.appendChild(state);
        cell(tr, String(c.pending), "num");
        cell(tr, String(c.pushes), "num");
        cell(tr, String(c.failures), "num");
        cell(tr, c.lag_ms_p50 + " / " + c.lag_ms_p99, "num");
        cell(tr, String(c.rejected_orders), "num");
        cell(tr, c.last_error, "small");
        tbody.appendChild(tr);
      });
      if (!rows.length) {
        emptyRow(tbody, 8, "No channel reports (oms-channels not running, or no channels)");
      }
    });
  }

  function liveOverview(root) {
    if (!window.EventSource) { return; }
    var dots = document.querySelectorAll("[data-live]");
    function mark(cls) { Array.prototype.forEach.call(dots, function (d) { d.className = "dot " + cls; }); }
    var es = new EventSource(root.getAttribute("data-events"));
    es.onmessage = function (ev) {
      try { drawOverview(JSON.parse(ev.data)); mark("on"); } catch (err) { mark("off"); }
    };
    es.addEventListener("failed", function () { mark("off"); });
    es.addEventListener("signed-out", function () { es.close(); window.location.assign("/login"); });
    es.onerror = function () { mark("off"); };
    window.addEventListener("pagehide", function () { es.close(); });
  }

  // --- every page: confirmation for dangerous buttons ------------------------------------
  // <form data-confirm="Cancel order X?"> asks before it submits.
  function confirmForms() {
    document.addEventListener("submit", function (ev) {
      var form = ev.target;
      var msg = form && form.getAttribute && form.getAttribute("data-confirm");
      if (msg && !window.confirm(msg)) { ev.preventDefault(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    confirmForms();
    var overview = document.getElementById("overview");
    if (overview) { liveOverview(overview); }
  });

  // For other pages' scripts: the session's CSRF token for fetch() POSTs (X-CSRF-Token).
  window.omsConsole = {
    csrf: function () {
      var m = document.querySelector('meta[name="csrf-token"]');
      return m ? m.getAttribute("content") : "";
    }
  };
})();
