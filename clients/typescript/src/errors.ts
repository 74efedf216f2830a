/** Errors the client throws: every non-2xx answer is an ApiError carrying the server's
 * RFC 9457 problem+json fields (status, code, title, detail, ...). */
import type { Problem, ValidationIssue } from "./types.js";

export class ApiError extends Error {
  override readonly name = "ApiError";
  /** HTTP status of the answer. */
  readonly status: number;
  /** The server's stable error code, e.g. `agent_not_found`, `token_expired`. */
  readonly code: string;
  readonly title: string;
  readonly detail: string;
  readonly type: string;
  /** The id to quote when asking an operator about this request. */
  readonly requestId: string | null;
  /** The server says a retry may succeed (503, 429...). */
  readonly retryable: boolean | null;
  /** Seconds from `Retry-After`, when the answer had one. */
  readonly retryAfter: number | null;
  /** Per-field problems of a 422. */
  readonly errors: ValidationIssue[];
  /** The whole problem body as the server sent it (extra members included). */
  readonly problem: Partial<Problem> & Record<string, unknown>;

  constructor(status: number, problem: Partial<Problem> & Record<string, unknown>, retryAfter: number | null = null) {
    const code = typeof problem.code === "string" ? problem.code : `http_${status}`;
    const title = typeof problem.title === "string" ? problem.title : `HTTP ${status}`;
    const detail = typeof problem.detail === "string" ? problem.detail : "";
    super(detail ? `${status} ${code}: ${detail}` : `${status} ${code}: ${title}`);
    this.status = status;
    this.code = code;
    this.title = title;
    this.detail = detail;
    this.type = typeof problem.type === "string" ? problem.type : "about:blank";
    this.requestId = typeof problem.request_id === "string" ? problem.request_id : null;
    this.retryable = typeof problem.retryable === "boolean" ? problem.retryable : null;
    this.retryAfter = retryAfter;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.problem = problem;
  }

  /** Worth trying again later: the server said so, or the status says so. */
  get transient(): boolean {
    if (this.retryable !== null) return this.retryable;
    return this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

/** The problem of a failed response; a body that is not JSON still gives an ApiError. */
export async function apiError(response: Response): Promise<ApiError> {
  const header = response.headers.get("Retry-After");
  const retryAfter = header !== null && /^\d+$/.test(header.trim()) ? Number(header.trim()) : null;
  let text = "";
  try {
    text = await response.text();
  } catch {
    // the body broke off: the status alone must do
  }
  let problem: Record<string, unknown> = { status: response.status };
  try {
    const body: unknown = JSON.parse(text);
    if (body !== null && typeof body === "object" && !Array.isArray(body)) {
      problem = body as Record<string, unknown>;
    }
  } catch {
    if (text) problem.detail = text.slice(0, 500);
  }
  if (typeof problem.title !== "string" && response.statusText) problem.title = response.statusText;
  return new ApiError(response.status, problem, retryAfter);
}

/** Thrown when an event stream cannot be resumed within the reconnect budget. */
export class StreamError extends Error {
  override readonly name = "StreamError";
  readonly lastEventId: string | null;
  constructor(message: string, lastEventId: string | null, options?: { cause?: unknown }) {
    super(message);
    this.lastEventId = lastEventId;
    if (options && "cause" in options) (this as { cause?: unknown }).cause = options.cause;
  }
}
