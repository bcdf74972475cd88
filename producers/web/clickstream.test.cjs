// Unit tests of the SDK's batching and retry logic with fake timers and a
// fake fetch (node --test; run by web_test.go). The browser behaviour
// (beacons, IntersectionObserver, localStorage) is tested in Chromium.
"use strict";
const { test, mock } = require("node:test");
const assert = require("node:assert");

function load() {
  delete require.cache[require.resolve("./clickstream.js")];
  return require("./clickstream.js");
}

// fakeFetch answers with the statuses given, in order (then 202s).
function fakeFetch(answers) {
  const calls = [];
  globalThis.fetch = (url, init) => {
    const events = init.body.trim().split("\n").map((l) => JSON.parse(l));
    calls.push({ url, init, events });
    const a = answers.shift() || { status: 202 };
    const body = a.body || { accepted: events.length, rejected: [] };
    return Promise.resolve({
      status: a.status,
      headers: { get: (h) => (a.headers || {})[h] || null },
      json: () => Promise.resolve(body),
    });
  };
  return calls;
}

async function settle() { for (let i = 0; i < 20; i++) await Promise.resolve(); }

test("batches by count and by time, and retries 503 with backoff until accepted, without losing or doubling", async () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"] });
  try {
    const calls = fakeFetch([{ status: 503 }, { status: 202 }]);
    const cs = load();
    cs.init({ url: "https://c.example/", key: "k", userId: "u-1", batchSize: 3, flushInterval: 1000 });
    const ids = [1, 2, 3, 4, 5].map((i) => cs.click("item-" + i, { placement: "feed", position: i }));
    mock.timers.tick(0); await settle();
    assert.strictEqual(calls.length, 1, "a full batch goes at once");
    assert.strictEqual(calls[0].url, "https://c.example/v1/events");
    assert.strictEqual(calls[0].init.headers.Authorization, "Bearer k");
    assert.deepStrictEqual(calls[0].events.map((e) => e.id), ids.slice(0, 3));
    assert.strictEqual(cs.stats().failures, 1);
    mock.timers.tick(1000); await settle(); // backoff ≤ 1 s on the first failure
    assert.strictEqual(calls.length, 2, "the same batch again after the backoff");
    assert.deepStrictEqual(calls[1].events.map((e) => e.id), ids.slice(0, 3));
    mock.timers.tick(0); await settle();
    assert.strictEqual(calls.length, 3, "then the rest");
    assert.deepStrictEqual(calls[2].events.map((e) => e.id), ids.slice(3));
    assert.strictEqual(cs.stats().queued, 0);
    const e = calls[2].events[0];
    assert.strictEqual(e.type, "click"); assert.strictEqual(e.user_id, "u-1"); assert.strictEqual(e.placement, "feed"); assert.strictEqual(e.v, 1);
  } finally { mock.timers.reset(); }
});

test("a partial batch waits for the flush interval; 429 honours Retry-After", async () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"] });
  try {
    const calls = fakeFetch([{ status: 429, headers: { "Retry-After": "3" } }]);
    const cs = load();
    cs.init({ url: "https://c.example", key: "k", batchSize: 50, flushInterval: 1000 });
    cs.track("page_view", { uri: "/" });
    mock.timers.tick(999); await settle();
    assert.strictEqual(calls.length, 0);
    mock.timers.tick(1); await settle();
    assert.strictEqual(calls.length, 1);
    mock.timers.tick(2999); await settle();
    assert.strictEqual(calls.length, 1, "not before Retry-After");
    mock.timers.tick(1); await settle();
    assert.strictEqual(calls.length, 2);
    assert.strictEqual(cs.stats().queued, 0);
  } finally { mock.timers.reset(); }
});

test("events the collector rejects go to onReject and are never retried; whole-request 4xx goes to onError", async () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"] });
  try {
    const calls = fakeFetch([{ status: 202, body: { accepted: 1, rejected: [{ index: 1, error: "position: must be >= 0, got -1" }] } },
      { status: 413, body: { error: "body too large" } }]);
    const rejected = [], errors = [];
    const cs = load();
    cs.init({ url: "https://c.example", key: "k", batchSize: 2, onReject: (r) => rejected.push(...r), onError: (e) => errors.push(e) });
    cs.click("a", { position: 1 });
    cs.click("b", { position: -1 });
    mock.timers.tick(0); await settle();
    assert.strictEqual(rejected.length, 1);
    assert.strictEqual(rejected[0].event.item_id, "b");
    assert.match(rejected[0].error, /position/);
    cs.track("x", {}); cs.track("y", {});
    mock.timers.tick(0); await settle();
    assert.strictEqual(errors.length, 1);
    assert.match(errors[0].message, /413/);
    mock.timers.tick(60000); await settle();
    assert.strictEqual(calls.length, 2, "nothing retried");
    assert.strictEqual(cs.stats().queued, 0);
  } finally { mock.timers.reset(); }
});

test("a full queue drops the oldest events and counts them", async () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"] });
  try {
    fakeFetch([]);
    const cs = load();
    cs.init({ url: "https://c.example", key: "k", batchSize: 1000, maxQueue: 3, flushInterval: 60000 });
    for (let i = 0; i < 5; i++) cs.track("e", { n: i });
    assert.deepStrictEqual(cs.stats().queued, 3);
    assert.deepStrictEqual(cs.stats().dropped, 2);
  } finally { mock.timers.reset(); }
});

// fakeStorage is a Map-backed localStorage shared by the "tabs" of a test.
function fakeStorage() {
  const m = new Map();
  return {
    get length() { return m.size; },
    key: (i) => Array.from(m.keys())[i] ?? null,
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
    _m: m,
  };
}

test("a closed tab's stored events are sent once, by the one later tab that adopts them", async () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"] });
  try {
    globalThis.localStorage = fakeStorage();
    const calls = fakeFetch([]);
    globalThis.fetch = () => new Promise(() => {}); // tab 1 is offline: nothing answers
    const tab1 = load();
    tab1.init({ url: "https://c.example", key: "k", batchSize: 100, flushInterval: 60000 });
    const ids = [tab1.track("e", { n: 1 }), tab1.track("e", { n: 2 })];
    assert.strictEqual([...globalThis.localStorage._m.keys()].filter((k) => k.startsWith("clickstream:q:")).length, 1);
    // Tab 1 is closed: its last heartbeat is 20 s old when two tabs open.
    globalThis.localStorage.setItem("clickstream:alive:" + tab1.stats().tab, String(Date.now() - 20000));
    const sent = [];
    globalThis.fetch = (url, init) => {
      sent.push(...init.body.trim().split("\n").map((l) => JSON.parse(l).id));
      return Promise.resolve({ status: 202, headers: { get: () => null }, json: () => Promise.resolve({ accepted: 1, rejected: [] }) });
    };
    const tab2 = load();
    tab2.init({ url: "https://c.example", key: "k", flushInterval: 60000 });
    const tab3 = load();
    tab3.init({ url: "https://c.example", key: "k", flushInterval: 60000 });
    assert.strictEqual(tab2.stats().queued + tab3.stats().queued, 2, "adopted by one tab");
    assert.ok(tab2.stats().queued === 0 || tab3.stats().queued === 0, "not by both");
    mock.timers.tick(0); await settle();
    assert.deepStrictEqual(sent.sort(), ids.sort(), "each event sent once");
    assert.strictEqual(calls.length, 0);
  } finally {
    delete globalThis.localStorage;
    mock.timers.reset();
  }
});
