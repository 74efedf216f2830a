/** Names for the generated OpenAPI types (src/generated/openapi.ts, `npm run openapi`). */
import type { components, paths } from "./generated/openapi.js";

export type { components, paths, operations } from "./generated/openapi.js";

type Schemas = components["schemas"];

export type Problem = Schemas["Problem"];
export type ValidationIssue = Schemas["ValidationIssue"];
export type TokenResponse = Schemas["TokenResponse"];
export type Principal = Schemas["PrincipalResponse"];
export type ApiKeyCreate = Schemas["ApiKeyCreate"];
export type ApiKeyCreated = Schemas["ApiKeyCreated"];
export type ApiKeyList = Schemas["ApiKeyList"];
export type UserCreate = Schemas["UserCreate"];
export type UserInfo = Schemas["UserInfo"];
export type UserList = Schemas["UserList"];
export type UserScopesUpdate = Schemas["UserScopesUpdate"];
export type TenantCreate = Schemas["TenantCreate"];
export type TenantUpdate = Schemas["TenantUpdate"];
export type TenantInfo = Schemas["TenantInfo"];
export type TenantList = Schemas["TenantList"];
export type TenantPolicy = Schemas["TenantPolicyBody"];
export type AgentInfo = Schemas["AgentInfo"];
export type AgentList = Schemas["AgentList"];
export type AgentRunBody = Schemas["AgentRunBody"];
export type InvokeResponse = Schemas["InvokeResponse"];
export type RunInfo = Schemas["RunInfo"];
export type RunList = Schemas["RunList"];
export type Accepted = Schemas["Accepted"];
export type SessionCreate = Schemas["SessionCreate"];
export type SessionResponse = Schemas["SessionResponse"];
export type SessionList = Schemas["SessionList"];
export type MessageList = Schemas["MessageList"];
export type TaskCreate = Schemas["TaskCreate"];
export type TaskSubmitted = Schemas["TaskSubmitted"];
export type TaskInfo = Schemas["TaskInfo"];
export type TaskList = Schemas["TaskList"];
export type TaskResult = Schemas["TaskResultResponse"];
export type TaskControl = Schemas["TaskControl"];
export type TaskMemory = Schemas["TaskMemory"];
export type EventList = Schemas["EventList"];
export type ToolList = Schemas["ToolList"];
export type UsageReport = Schemas["UsageReport"];
export type BudgetReport = Schemas["BudgetReport"];
export type WebhookCreate = Schemas["WebhookCreate"];
export type WebhookCreated = Schemas["WebhookCreated"];
export type WebhookInfo = Schemas["WebhookInfo"];
export type WebhookList = Schemas["WebhookList"];
export type DeliveryInfo = Schemas["DeliveryInfo"];
export type DeliveryList = Schemas["DeliveryList"];
export type Liveness = Schemas["Liveness"];
export type Readiness = Schemas["Readiness"];

/** A frame of a run's stream (POST /v1/agents/{agent}/stream, GET /v1/runs/{id}/events). */
export type RunEvent = Schemas["RunStreamEvent"] | Schemas["EventsMissed"];
/** A frame of a task's stream (GET /v1/tasks/{id}/events). */
export type TaskEvent = Schemas["TaskStreamEvent"];
export type EventsMissed = Schemas["EventsMissed"];
export type InputRequired = Schemas["InputRequired"];
export type RunCompleted = Schemas["RunCompleted"];
export type ErrorEvent = Schemas["ErrorEvent"];
export type TokenEvent = Schemas["TokenEvent"];

/** The query parameters of an operation, as the OpenAPI document declares them. */
export type QueryOf<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  parameters: { query?: infer Q };
}
  ? NonNullable<Q>
  : never;
