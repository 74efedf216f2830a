/** A resumable event stream: an async iterator of typed events that reconnects by itself
 * with `Last-Event-ID` and exponential backoff when the connection drops, so a reader
 * sees every event exactly once. Events the server no longer keeps are announced by an
 * `events_missed` event (yielded like any other). Abort with an AbortSignal or close(). */
import { ApiError, StreamError } from "./errors.js";
import { readFrames } from "./sse.js";

export interface ReconnectOptions {
  /** Reconnects in a row without receiving an event before giving up (default 8). */
  retries?: number;
  /** First backoff delay in ms (default 250), doubled each attempt up to maxDelayMs. */
  initialDelayMs?: number;
  /** Largest backoff delay in ms (default 5000). */
  maxDelayMs?: number;
}

export interface StreamOptions {
  /** Aborting closes the connection; the iterator then throws the signal's reason. */
  signal?: AbortSignal;
  /** Resume after this event id (a frame's `id`) instead of from the start. */
  lastEventId?: string;
  /** false: a dropped connection throws StreamError instead of reconnecting. */
  reconnect?: ReconnectOptions | false;
  /** Told before each reconnect (e.g. to show "reconnecting..."). */
  onReconnect?: (info: { attempt: number; lastEventId: string | null; error: unknown }) => void;
}

/** Opens (or reopens) the stream after `lastEventId` (null: from the first event). */
export type Opener = (lastEventId: string | null, signal: AbortSignal) => Promise<Response>;

const TERMINAL = new Set(["run_completed", "error"]);

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error("The operation was aborted.");
}

/** Waits ms, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      if (signal) reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export class EventStream<E extends { type: string }> implements AsyncIterable<E> {
  /** The id of the last event received: where a reconnect resumes. */
  lastEventId: string | null;
  /** How many times the connection was reopened. */
  reconnects = 0;
  private readonly controller = new AbortController();
  private first: Response | null;
  private started = false;

  constructor(
    first: Response | null,
    private readonly open: Opener,
    private readonly options: StreamOptions = {},
  ) {
    this.first = first;
    this.lastEventId = options.lastEventId ?? null;
    const outer = options.signal;
    if (outer) {
      if (outer.aborted) this.controller.abort(outer.reason);
      else outer.addEventListener("abort", () => this.controller.abort(outer.reason), { once: true });
    }
  }

  /** Stop reading and close the connection. */
  close(): void {
    this.controller.abort(new StreamError("The stream was closed.", this.lastEventId));
  }

  [Symbol.asyncIterator](): AsyncIterator<E> {
    if (this.started) throw new Error("An EventStream can be iterated once.");
    this.started = true;
    return this.events();
  }

  private backoff(attempt: number): number {
    const reconnect = this.options.reconnect || {};
    const initial = reconnect.initialDelayMs ?? 250;
    const max = reconnect.maxDelayMs ?? 5000;
    const delay = Math.min(max, initial * 2 ** (attempt - 1));
    return delay / 2 + (Math.random() * delay) / 2; // jitter: reconnecting clients spread out
  }

  private async *events(): AsyncGenerator<E> {
    const signal = this.controller.signal;
    const retries = this.options.reconnect === false ? 0 : (this.options.reconnect?.retries ?? 8);
    let response = this.first;
    this.first = null;
    let attempt = 0;
    try {
      for (;;) {
        let failure: unknown = null;
        let hint: number | null = null;
        let terminal = false;
        let shutdown = false;
        try {
          if (response === null) response = await this.open(this.lastEventId, signal);
          if (response.body === null) throw new StreamError("The response has no body.", this.lastEventId);
          for await (const frame of readFrames(response.body, signal)) {
            if (frame.id !== null) this.lastEventId = frame.id;
            if (frame.event === "shutdown") {
              shutdown = true; // the server is restarting: reconnect, after its retry hint
              hint = frame.retry;
              continue;
            }
            const event = JSON.parse(frame.data) as E;
            attempt = 0;
            terminal = TERMINAL.has(event.type);
            yield event;
          }
          if (signal.aborted) throw abortReason(signal);
          if (terminal && !shutdown) return; // the server ended the stream after the end
          failure = new StreamError("The stream ended before the run finished.", this.lastEventId);
        } catch (error) {
          if (signal.aborted) throw abortReason(signal);
          if (error instanceof ApiError && !error.transient) throw error;
          if (error instanceof SyntaxError) throw new StreamError(`Unreadable event: ${error.message}`, this.lastEventId);
          failure = error;
          hint = error instanceof ApiError && error.retryAfter !== null ? error.retryAfter * 1000 : null;
        }
        response = null;
        attempt += 1;
        if (attempt > retries) {
          if (failure instanceof ApiError || failure instanceof StreamError) throw failure;
          throw new StreamError("The stream broke and could not be resumed.", this.lastEventId, { cause: failure });
        }
        this.options.onReconnect?.({ attempt, lastEventId: this.lastEventId, error: failure });
        await sleep(hint ?? this.backoff(attempt), signal);
        this.reconnects += 1;
      }
    } finally {
      response?.body?.cancel().catch(() => undefined);
    }
  }
}
