// Compile-time checks of the generated event types (tsc -p tsconfig.test.json, part of
// `npm run build`): narrowing on `type` gives each event its own fields.
import { AgentServiceClient, ApiError, type RunEvent, type TaskEvent } from "../src/index.js";

export function describe(event: RunEvent | TaskEvent): string {
  switch (event.type) {
    case "token":
      return event.text;
    case "input_required":
      return `${event.request_id} ${event.kind} ${event.prompt} ${(event.choices ?? []).join(",")}`;
    case "run_completed":
      return `${event.output} ${event.usage.total_tokens} ${event.cached}`;
    case "error":
      return `${event.code}: ${event.message}`;
    case "events_missed":
      return `${event.from_seq}..${event.to_seq}`;
    default:
      return event.type;
  }
}

export async function example(client: AgentServiceClient): Promise<string> {
  const run = await client.stream("chat", { input: "Hello" });
  let text = "";
  for await (const event of run) {
    if (event.type === "token") text += event.text;
    // @ts-expect-error a token has no `output`
    if (event.type === "token") text += event.output;
  }
  try {
    await client.invoke("chat", { input: "" });
  } catch (error) {
    if (error instanceof ApiError) text += error.code + error.detail + String(error.status);
  }
  return text;
}
