// Type declarations of the Clickstream web SDK (clickstream.js, served at /v1/sdk.js).
declare namespace clickstream {
  interface InitOptions {
    /** The collector's base URL, e.g. "https://collector.example.com". */
    url: string;
    /** An API key of the collector (sent as a bearer token; in the query string for beacons). */
    key: string;
    app?: string;
    userId?: string;
    sessionId?: string;
    /** Events per request (default 50). */
    batchSize?: number;
    /** Longest wait before queued events are sent, in ms (default 5000). */
    flushInterval?: number;
    /** Events kept in memory; beyond it the oldest are dropped and counted (default 1000). */
    maxQueue?: number;
    /** Events kept in localStorage for the next page load (default 500). */
    maxStored?: number;
    /** Events the collector refused, with its reason; they are not retried. */
    onReject?: (rejected: { event: Event; error: string }[]) => void;
    /** A request refused as a whole (4xx other than 429). */
    onError?: (err: Error) => void;
  }
  interface Event {
    v: 1; id: string; type: string; ts: string;
    user_id?: string; session_id?: string; app?: string;
    [field: string]: unknown;
  }
  interface ClickOptions {
    placement?: string;
    position?: number;
    features?: Record<string, number>;
  }
  /** Configure the SDK; call once per page. */
  function init(options: InitOptions): typeof clickstream;
  /** Queue an event of any type; returns its id. */
  function track(type: string, fields?: Record<string, unknown>): string;
  /** Queue a click on an item. */
  function click(itemId: string, options?: ClickOptions): string;
  /**
   * Send an impression once per item and placement per page view when at least 50% of an element
   * with data-item-id (data-position, data-features optional) was visible for 1 continuous second
   * while the page was visible. Returns a function that stops observing.
   */
  function observeImpressions(target: Element | ArrayLike<Element>, options?: { placement?: string }): () => void;
  /** Send what is queued now. */
  function flush(): Promise<void>;
  function setUser(userId: string): void;
  function stats(): { queued: number; dropped: number; failures: number; tab: string };
  const version: string;
}
