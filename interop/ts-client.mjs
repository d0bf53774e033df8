// Drive mcp-avaya-workflows with the official TypeScript MCP SDK client, over stdio or streamable HTTP.
//
// Usage:
//   node ts-client.mjs stdio COMMAND [ARG...]   launch the server as a stdio subprocess
//   node ts-client.mjs http URL                 connect to a running server's MCP endpoint
//
// The server must use the embedded sandbox (`serve --sandbox`) with its own catalog. Each check prints
// one line, "PASS <name>" or "FAIL <name>: <reason>", and the process exits with 1 when any check failed.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { getDefaultEnvironment, StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const START_TOOL = "start_workflow_session";
const STATUS_TOOL = "get_workflow_session_status";

// Avaya's example workflow and its example input variables, as in mcp_avaya_workflows/demo.py.
const DEMO_WORKFLOW_ID = "025d010819f98dbc75776be9666";
const DEMO_VARIABLES = {
  page: "payment_failed",
  amount: "$80,988.00",
  transaction_id: "TXN-2024-001234",
  error: "Card declined",
  user_id: "user_12345",
  account: "premium",
};
const WAIT_SECONDS = 10;
// The demo workflow takes about 2.4 s at the sandbox's default time scale, so a minute is ample.
const FOLLOW_LIMIT_MS = 60_000;
// Per-request timeout of the SDK, above the 52 s that the server's README gives as the longest a status call runs.
const REQUEST_TIMEOUT_MS = 60_000;

function usage(message) {
  console.error(`${message}\nUsage: node ts-client.mjs stdio COMMAND [ARG...] | node ts-client.mjs http URL`);
  process.exit(2);
}

function makeTransport(argv) {
  const [mode, ...rest] = argv;
  if (mode === "stdio") {
    if (rest.length === 0) usage("Missing COMMAND for the stdio transport.");
    const env = { ...getDefaultEnvironment(), AVAYA_WORKFLOWS_AUDIT_LOG: "off", AVAYA_WORKFLOWS_LOG_LEVEL: "WARNING" };
    return new StdioClientTransport({ command: rest[0], args: rest.slice(1), env, stderr: "inherit" });
  }
  if (mode === "http") {
    if (rest.length !== 1) usage("Expected exactly one URL for the http transport.");
    return new StreamableHTTPClientTransport(new URL(rest[0]));
  }
  return usage(`Unknown transport '${mode ?? ""}': expected 'stdio' or 'http'.`);
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function textOf(result) {
  return (result.content ?? [])
    .filter((block) => block.type === "text")
    .map((block) => block.text)
    .join(" ");
}

function successOf(result, tool) {
  assert(!result.isError, `${tool} returned a tool error: ${textOf(result)}`);
  assert(result.structuredContent, `${tool} returned no structuredContent`);
  assert(typeof result.structuredContent === "object", `${tool} returned a structuredContent that is not an object`);
  return result.structuredContent;
}

const transportName = process.argv[2];
const transport = makeTransport(process.argv.slice(2));
const client = new Client({ name: "mcp-avaya-workflows-interop", version: "1.0.0" });
const passed = new Set();
const state = {};
let failed = 0;

// Run one named check after the checks it needs. A check whose prerequisite failed is reported as
// failed too, so an early failure does not shrink the number of checks.
async function check(name, needs, body) {
  const label = `ts-client ${transportName}: ${name}`;
  const missing = needs.filter((prerequisite) => !passed.has(prerequisite));
  if (missing.length > 0) {
    failed += 1;
    console.log(`FAIL ${label}: not run because '${missing.join("', '")}' failed`);
    return;
  }
  try {
    await body();
    passed.add(name);
    console.log(`PASS ${label}`);
  } catch (error) {
    failed += 1;
    const reason = error instanceof Error ? error.message : String(error);
    console.log(`FAIL ${label}: ${reason.replace(/\s+/g, " ")}`);
  }
}

await check("initialize", [], async () => {
  await client.connect(transport, { timeout: REQUEST_TIMEOUT_MS });
  const info = client.getServerVersion();
  assert(info?.name === "mcp-avaya-workflows", `unexpected server name ${JSON.stringify(info?.name)}`);
  assert(client.getServerCapabilities()?.tools, "the server did not declare the tools capability");
});

await check("tools/list shows both tools", ["initialize"], async () => {
  const { tools } = await client.listTools();
  const byName = new Map(tools.map((tool) => [tool.name, tool]));
  for (const name of [START_TOOL, STATUS_TOOL]) {
    const tool = byName.get(name);
    assert(tool, `tool ${name} is missing; listed: ${[...byName.keys()].join(", ")}`);
    assert(tool.inputSchema?.type === "object", `${name} has no object inputSchema`);
    assert(tool.outputSchema?.type === "object", `${name} has no object outputSchema`);
  }
  const start = byName.get(START_TOOL);
  assert(start.inputSchema.required?.includes("workflow_id"), `${START_TOOL} does not require workflow_id`);
  assert(start.annotations?.readOnlyHint === false, `${START_TOOL} is not annotated readOnlyHint: false`);
  assert(start.annotations?.destructiveHint === true, `${START_TOOL} is not annotated destructiveHint: true`);
  const status = byName.get(STATUS_TOOL);
  assert(status.inputSchema.required?.includes("session_id"), `${STATUS_TOOL} does not require session_id`);
  assert("wait_seconds" in (status.inputSchema.properties ?? {}), `${STATUS_TOOL} has no wait_seconds argument`);
  assert(status.annotations?.readOnlyHint === true, `${STATUS_TOOL} is not annotated readOnlyHint: true`);
  // Listing tools also makes the SDK validate every later structuredContent against its outputSchema.
});

await check("start the demo workflow", ["tools/list shows both tools"], async () => {
  const result = await client.callTool(
    { name: START_TOOL, arguments: { workflow_id: DEMO_WORKFLOW_ID, variables: DEMO_VARIABLES } },
    undefined,
    { timeout: REQUEST_TIMEOUT_MS },
  );
  const started = successOf(result, START_TOOL);
  assert(
    typeof started.session_id === "string" && started.session_id.startsWith("wfs_"),
    `session_id is not a wfs_ handle: ${JSON.stringify(started.session_id)}`,
  );
  assert(started.workflow_id === DEMO_WORKFLOW_ID, `workflow_id is ${JSON.stringify(started.workflow_id)}`);
  assert(
    started.workflow_name === "Payment Failure Assistance",
    `workflow_name is ${JSON.stringify(started.workflow_name)}`,
  );
  assert(started.terminal === false, "a freshly started session is already terminal");
  assert(
    JSON.stringify(JSON.parse(textOf(result))) === JSON.stringify(started),
    "the text content is not a copy of structuredContent",
  );
  state.handle = started.session_id;
});

await check("wait_seconds until COMPLETED", ["start the demo workflow"], async () => {
  const deadline = Date.now() + FOLLOW_LIMIT_MS;
  const progress = [];
  let status;
  do {
    const result = await client.callTool(
      { name: STATUS_TOOL, arguments: { session_id: state.handle, wait_seconds: WAIT_SECONDS } },
      undefined,
      { timeout: REQUEST_TIMEOUT_MS, onprogress: (update) => progress.push(update) },
    );
    status = successOf(result, STATUS_TOOL);
  } while (!status.terminal && Date.now() < deadline);

  assert(
    status.terminal === true,
    `the session did not end within ${FOLLOW_LIMIT_MS / 1000} s; last status ${status.status}`,
  );
  assert(
    status.status === "COMPLETED",
    `the session ended with status ${JSON.stringify(status.status)}, expected COMPLETED`,
  );
  assert(status.is_running === false, "a terminal session still has is_running: true");
  assert(status.session_id === state.handle, "the status names a different session_id than the start returned");
  assert(progress.length > 0, "no progress notification arrived during the wait");
  assert(
    progress.every((update) => update.total === WAIT_SECONDS),
    "a progress notification has a total other than wait_seconds",
  );
  state.status = status;
});

await check("sensitive outputs are masked and dropped", ["wait_seconds until COMPLETED"], async () => {
  const { output_variables: outputs, masked_variables: masked, dropped_variables: dropped } = state.status;
  assert(outputs.ticketId === "INC-20417", `ticketId is ${JSON.stringify(outputs.ticketId)}`);
  assert(masked.includes("cardNumber"), `cardNumber is not in masked_variables: ${JSON.stringify(masked)}`);
  assert(!String(outputs.cardNumber).includes("4111 1111"), "cardNumber reached the client unmasked");
  assert(dropped.includes("ssn"), `ssn is not in dropped_variables: ${JSON.stringify(dropped)}`);
  assert(!("ssn" in outputs), "ssn reached the client in output_variables");
});

await check("invalid workflow_id is a tool error naming the field", ["tools/list shows both tools"], async () => {
  const result = await client.callTool({ name: START_TOOL, arguments: { workflow_id: "ab/cd" } });
  assert(result.isError === true, `expected isError: true, got ${JSON.stringify(result.isError)}`);
  assert(textOf(result).includes("'workflow_id'"), `the error does not name workflow_id: ${textOf(result)}`);
});

await check("misspelled argument is a tool error naming it", ["tools/list shows both tools"], async () => {
  const result = await client.callTool({
    name: START_TOOL,
    arguments: { workflow_id: DEMO_WORKFLOW_ID, variabls: DEMO_VARIABLES },
  });
  assert(result.isError === true, `expected isError: true, got ${JSON.stringify(result.isError)}`);
  assert(textOf(result).includes("'variabls'"), `the error does not name variabls: ${textOf(result)}`);
  assert(textOf(result).includes("'variables'"), `the error does not suggest variables: ${textOf(result)}`);
});

await check("negative wait_seconds is a tool error naming the field", ["start the demo workflow"], async () => {
  const result = await client.callTool({
    name: STATUS_TOOL,
    arguments: { session_id: state.handle, wait_seconds: -1 },
  });
  assert(result.isError === true, `expected isError: true, got ${JSON.stringify(result.isError)}`);
  assert(textOf(result).includes("'wait_seconds'"), `the error does not name wait_seconds: ${textOf(result)}`);
});

try {
  if (transport instanceof StreamableHTTPClientTransport && transport.sessionId) {
    await transport.terminateSession();
  }
  await client.close();
} catch (error) {
  // A failed goodbye does not change any result above, but it should be visible.
  console.error(`Closing the ${transportName} connection failed: ${error instanceof Error ? error.message : error}`);
}
process.exit(failed > 0 ? 1 : 0);
