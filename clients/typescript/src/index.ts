/** agent-service TypeScript client: see README.md of clients/typescript. */
export { AgentServiceClient, RunStream } from "./client.js";
export type { ClientOptions, RequestOptions } from "./client.js";
export { ApiError, StreamError } from "./errors.js";
export { EventStream } from "./stream.js";
export type { ReconnectOptions, StreamOptions, Opener } from "./stream.js";
export { SseParser, readFrames } from "./sse.js";
export type { SseFrame } from "./sse.js";
export type * from "./types.js";
