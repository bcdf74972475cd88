/*! Clickstream web SDK v1 — batched, retried, unload-safe, offline-tolerant
 * events for a Clickstream collector, with viewable impressions.
 * <script src="https://COLLECTOR/v1/sdk.js"></script>
 * <script>clickstream.init({url: "https://COLLECTOR", key: "KEY", app: "web", userId: "u-42"});</script>
 */
(function (root, factory) {
  var api = factory(root);
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.clickstream = api;
})(typeof globalThis !== "undefined" ? globalThis : typeof self !== "undefined" ? self : this, function (root) {
  "use strict";

  var STORE = "clickstream:q:"; // + tab id: this tab's unsent events
  var ALIVE = "clickstream:alive:"; // + tab id: last heartbeat of a tab
  var BEACON_MAX = 60000; // bytes per sendBeacon (browsers allow ~64 KB in flight)
  var cfg = null, queue = [], timer = null, inflight = false, retryAt = 0, failures = 0;
  var tab = uid(), dropped = 0, seenItems = {}, observers = [];

  function uid() {
    var c = root.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
  }
  function now() { return Date.now(); }
  function storage() { try { return root.localStorage || null; } catch (e) { return null; } }
  function report(kind, info) { var f = cfg && cfg[kind]; if (f) { try { f(info); } catch (e) { /* the page's callback */ } } }

  // init configures the SDK: url (the collector), key, app, userId,
  // sessionId, and optionally batchSize (50), flushInterval (5000 ms),
  // maxQueue (1000 events), onReject(events with reasons), onError(error).
  function init(o) {
    if (!o || !o.url || !o.key) throw new Error("clickstream.init: url and key are required");
    cfg = {
      url: String(o.url).replace(/\/+$/, "") + "/v1/events", key: o.key, app: o.app, userId: o.userId,
      sessionId: o.sessionId || uid(), batchSize: o.batchSize || 50, flushInterval: o.flushInterval || 5000,
      maxQueue: o.maxQueue || 1000, maxStored: o.maxStored || 500, onReject: o.onReject, onError: o.onError
    };
    adopt();
    heartbeat();
    if (root.addEventListener) {
      root.addEventListener("pagehide", unload);
      root.addEventListener("online", function () { retryAt = 0; schedule(0); });
      if (root.document) root.document.addEventListener("visibilitychange", function () {
        if (root.document.visibilityState === "hidden") unload(); else viewabilityResume();
      });
    }
    schedule(queue.length ? 0 : cfg.flushInterval);
    return api;
  }

  function setUser(userId) { if (cfg) cfg.userId = userId; }

  // track queues one event of any type; fields follow the v1 contract.
  function track(type, fields) {
    if (!cfg) throw new Error("clickstream: call init first");
    var ev = { v: 1, id: uid(), type: type, ts: new Date().toISOString() };
    if (cfg.userId) ev.user_id = cfg.userId;
    if (cfg.sessionId) ev.session_id = cfg.sessionId;
    if (cfg.app) ev.app = cfg.app;
    for (var k in fields) if (Object.prototype.hasOwnProperty.call(fields, k)) ev[k] = fields[k];
    queue.push(ev);
    if (queue.length > cfg.maxQueue) { // drop the oldest, counted
      dropped += queue.length - cfg.maxQueue;
      queue.splice(0, queue.length - cfg.maxQueue);
    }
    persist();
    if (queue.length >= cfg.batchSize) schedule(0);
    return ev.id;
  }

  function click(itemId, o) {
    o = o || {};
    var f = { item_id: String(itemId) };
    if (o.placement) f.placement = o.placement;
    if (o.position !== undefined) f.position = o.position;
    if (o.features) f.features = o.features;
    return track("click", f);
  }

  function schedule(ms) {
    if (!cfg) return;
    if (timer) clearTimeout(timer);
    var wait = Math.max(ms, retryAt - now(), 0);
    timer = setTimeout(function () { timer = null; send(); }, wait);
  }

  // flush sends what is queued now; it resolves when the collector answered
  // (or the attempt failed and a retry is scheduled).
  function flush() { if (timer) { clearTimeout(timer); timer = null; } return send(); }

  function send() {
    if (!cfg || inflight) return Promise.resolve();
    if (!queue.length) { schedule(cfg.flushInterval); return Promise.resolve(); }
    if (now() < retryAt) { schedule(0); return Promise.resolve(); }
    var batch = queue.slice(0, cfg.batchSize);
    inflight = true;
    return post(batch).then(function (res) {
      inflight = false;
      if (res.retry) {
        failures++;
        var base = Math.min(60000, 1000 * Math.pow(2, failures - 1));
        retryAt = now() + Math.max(res.after || 0, Math.random() * base);
        schedule(0);
        return;
      }
      failures = 0; retryAt = 0;
      remove(batch);
      if (res.rejected && res.rejected.length) {
        report("onReject", res.rejected.map(function (r) { return { event: batch[r.index], error: r.error }; }));
      }
      if (res.error) report("onError", res.error);
      schedule(queue.length ? 0 : cfg.flushInterval);
    });
  }

  // remove drops the events of a finished batch from the queue.
  function remove(batch) {
    var ids = {};
    for (var i = 0; i < batch.length; i++) ids[batch[i].id] = true;
    queue = queue.filter(function (e) { return !ids[e.id]; });
    persist();
  }

  function body(batch) { return batch.map(function (e) { return JSON.stringify(e); }).join("\n") + "\n"; }

  // post sends a batch; the result says whether to retry (network error,
  // 429, 5xx) or what the collector refused.
  function post(batch) {
    var text = body(batch);
    return gzip(text).then(function (gz) {
      var headers = { "Content-Type": "application/x-ndjson", "Authorization": "Bearer " + cfg.key };
      if (gz) headers["Content-Encoding"] = "gzip";
      return root.fetch(cfg.url, { method: "POST", headers: headers, body: gz || text, keepalive: text.length < BEACON_MAX });
    }).then(function (resp) {
      if (resp.status === 429 || resp.status >= 500) {
        var ra = parseFloat(resp.headers.get("Retry-After"));
        return { retry: true, after: isFinite(ra) ? ra * 1000 : 0 };
      }
      return resp.json().catch(function () { return {}; }).then(function (b) {
        if (resp.status === 202) return { rejected: b.rejected || [] };
        // 4xx for the whole request: retrying cannot fix it.
        return { error: new Error("collector answered " + resp.status + ": " + (b.error || "")) };
      });
    }, function (err) { return { retry: true, error: err }; });
  }

  function gzip(text) {
    if (text.length < 1024 || typeof root.CompressionStream === "undefined" || typeof root.Response === "undefined") return Promise.resolve(null);
    try {
      var s = new root.Blob([text]).stream().pipeThrough(new root.CompressionStream("gzip"));
      return new root.Response(s).arrayBuffer().catch(function () { return null; });
    } catch (e) { return Promise.resolve(null); }
  }

  // unload sends what is queued with sendBeacon (the page may be gone
  // before a fetch answers); what cannot go stays stored for the next load.
  function unload() {
    if (!cfg || !queue.length || !root.navigator || !root.navigator.sendBeacon) return;
    var url = cfg.url + "?key=" + encodeURIComponent(cfg.key), sent = [];
    for (var i = 0; i < queue.length;) {
      var chunk = [], size = 0;
      while (i < queue.length && (size += JSON.stringify(queue[i]).length + 1) < BEACON_MAX) chunk.push(queue[i++]);
      if (!chunk.length) { i++; continue; } // one event too large for a beacon: keep it
      // text/plain: a beacon with another type needs a CORS preflight it cannot make.
      if (!root.navigator.sendBeacon(url, new root.Blob([body(chunk)], { type: "text/plain" }))) break;
      sent = sent.concat(chunk);
    }
    if (sent.length) remove(sent);
  }

  // Offline: this tab's queue is stored, bounded; a later page load adopts
  // the queues of tabs that stopped beating, one claimant each.
  function persist() {
    var ls = storage();
    if (!ls) return;
    try {
      if (queue.length) ls.setItem(STORE + tab, JSON.stringify(queue.slice(-cfg.maxStored)));
      else ls.removeItem(STORE + tab);
    } catch (e) { /* quota: keep in memory only */ }
  }
  function heartbeat() {
    var ls = storage();
    if (!ls) return;
    try { ls.setItem(ALIVE + tab, String(now())); } catch (e) { /* ignore */ }
    setTimeout(heartbeat, 5000);
  }
  function adopt() {
    var ls = storage();
    if (!ls) return;
    for (var i = ls.length - 1; i >= 0; i--) {
      var k = ls.key(i);
      if (!k || k.indexOf(STORE) !== 0) continue;
      var other = k.slice(STORE.length);
      if (other === tab || now() - Number(ls.getItem(ALIVE + other) || 0) < 15000) continue; // alive
      var items;
      try { items = JSON.parse(ls.getItem(k) || "[]"); } catch (e) { items = []; }
      ls.removeItem(k); ls.removeItem(ALIVE + other); // claimed: no other tab sends them
      var have = {};
      for (var j = 0; j < queue.length; j++) have[queue[j].id] = true;
      for (j = 0; j < items.length; j++) if (items[j] && !have[items[j].id]) queue.push(items[j]);
    }
    persist();
  }

  // Viewable impressions (IAB/MRC): at least 50% of the element on screen
  // for 1 continuous second while the page is visible; once per item and
  // placement per page view. Items are elements with data-item-id
  // (data-position, data-features as JSON optional).
  function observeImpressions(target, o) {
    o = o || {};
    if (typeof root.IntersectionObserver === "undefined") return function () {};
    var timers = new Map(), ratios = new Map(), placement = o.placement;
    function fire(el) {
      timers.delete(el);
      var id = el.getAttribute("data-item-id"), key = (placement || "") + "\u0000" + id;
      if (seenItems[key]) return;
      seenItems[key] = true;
      var f = { item_id: id };
      if (placement) f.placement = placement;
      var pos = el.getAttribute("data-position");
      if (pos !== null && pos !== "") f.position = Number(pos);
      var feats = el.getAttribute("data-features");
      if (feats) { try { f.features = JSON.parse(feats); } catch (e) { /* ignore bad markup */ } }
      track("impression", f);
    }
    function update(el, ratio) {
      ratios.set(el, ratio);
      var visible = ratio >= 0.5 && (!root.document || root.document.visibilityState !== "hidden");
      if (visible && !timers.has(el)) timers.set(el, setTimeout(function () { fire(el); }, 1000));
      if (!visible && timers.has(el)) { clearTimeout(timers.get(el)); timers.delete(el); }
    }
    var io = new root.IntersectionObserver(function (entries) {
      entries.forEach(function (e) { update(e.target, e.isIntersecting ? e.intersectionRatio : 0); });
    }, { threshold: [0, 0.5, 1] });
    function watch(el) { if (el.getAttribute && el.getAttribute("data-item-id") !== null) io.observe(el); }
    var els = target && target.length !== undefined ? target : [target];
    var mo = null;
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      if (!el) continue;
      watch(el);
      if (el.querySelectorAll) Array.prototype.forEach.call(el.querySelectorAll("[data-item-id]"), watch);
      if (els.length === 1 && typeof root.MutationObserver !== "undefined") {
        mo = new root.MutationObserver(function (ms) {
          ms.forEach(function (m) {
            Array.prototype.forEach.call(m.addedNodes, function (n) {
              if (n.nodeType !== 1) return;
              watch(n);
              if (n.querySelectorAll) Array.prototype.forEach.call(n.querySelectorAll("[data-item-id]"), watch);
            });
          });
        });
        mo.observe(el, { childList: true, subtree: true });
      }
    }
    var obs = {
      pause: function () { timers.forEach(function (t) { clearTimeout(t); }); timers.clear(); },
      resume: function () { ratios.forEach(function (r, el) { update(el, r); }); }
    };
    observers.push(obs);
    return function stop() {
      io.disconnect(); if (mo) mo.disconnect(); obs.pause();
      observers.splice(observers.indexOf(obs), 1);
    };
  }
  function viewabilityResume() { observers.forEach(function (o) { o.resume(); }); }
  if (root.document) root.document.addEventListener("visibilitychange", function () {
    if (root.document.visibilityState === "hidden") observers.forEach(function (o) { o.pause(); });
  });

  function stats() { return { queued: queue.length, dropped: dropped, failures: failures, tab: tab }; }

  var api = {
    init: init, track: track, click: click, observeImpressions: observeImpressions, flush: flush,
    setUser: setUser, stats: stats, version: "1"
  };
  return api;
});
