/** Server-sent events over fetch + ReadableStream (EventSource can send neither an
 * Authorization header nor a POST body). Parsing follows the HTML standard's rules:
 * https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation */

export interface SseFrame {
  event: string;
  data: string;
  /** The `id:` in force for this frame (the last one seen, as the standard says). */
  id: string | null;
  /** The server's `retry:` hint in milliseconds, when this frame carried one. */
  retry: number | null;
}

/** Incremental parser: push decoded text, get complete frames. */
export class SseParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private retry: number | null = null;
  private lastId: string | null = null;

  push(text: string): SseFrame[] {
    const frames: SseFrame[] = [];
    this.buffer += text;
    const newline = /\r\n|\r|\n/;
    for (;;) {
      const match = newline.exec(this.buffer);
      if (match === null) break;
      // A lone trailing "\r" may be the first half of a "\r\n" still in flight.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const frame = this.line(this.buffer.slice(0, match.index));
      if (frame !== null) frames.push(frame);
      this.buffer = this.buffer.slice(match.index + match[0].length);
    }
    return frames;
  }

  private line(text: string): SseFrame | null {
    if (text === "") return this.dispatch();
    if (text.startsWith(":")) return null; // a comment: the server's keep-alive
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
    return null;
  }

  private dispatch(): SseFrame | null {
    const frame =
      this.data.length > 0
        ? { event: this.event || "message", data: this.data.join("\n"), id: this.lastId, retry: this.retry }
        : null;
    this.event = "";
    this.data = [];
    this.retry = null;
    return frame;
  }
}

/** The frames of a response body, as they arrive. An unterminated last frame is dropped
 * (only a blank line dispatches), so a cut connection never yields half an event. */
export async function* readFrames(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<SseFrame> {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  const parser = new SseParser();
  // Closing must also end a body fetched without this signal (the first response of a stream).
  const stop = (): void => void reader.cancel().catch(() => undefined);
  signal?.addEventListener("abort", stop, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    yield* parser.push(decoder.decode());
  } finally {
    signal?.removeEventListener("abort", stop);
    reader.cancel().catch(() => undefined); // closes the connection if we stop early
  }
}
