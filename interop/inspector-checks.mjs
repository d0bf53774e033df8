// Drive mcp-avaya-workflows over stdio with the MCP Inspector CLI and check what it prints.
//
// Usage: node inspector-checks.mjs SERVER_COMMAND EMBEDDED_DIR SHARED_DIR
//
//   SERVER_COMMAND  the mcp-avaya-workflows console script
//   EMBEDDED_DIR    working directory for `serve --sandbox`, whose .env quiets the logs
//   SHARED_DIR      working directory for `serve`, whose .env points it at a standalone sandbox and
//                   sets a handle key. A session started by one server process can then be read by the next.
//
// The Inspector CLI starts a new server process for every call, and an embedded sandbox ends with its
// process. That is why the status check needs the standalone sandbox. Each check prints "PASS <name>" or
// "FAIL <name>: <reason>", and the process exits with 1 when any check failed.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const INSPECTOR = join(
  dirname(fileURLToPath(import.meta.url)),
  "node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js",
);
const START_TOOL = "start_workflow_session";
const STATUS_TOOL = "get_workflow_session_status";
const DEMO_WORKFLOW_ID = "025d010819f98dbc75776be9666";
const DEMO_VARIABLES = {
  page: "payment_failed",
  amount: "$80,988.00",
  transaction_id: "TXN-2024-001234",
  error: "Card declined",
  user_id: "user_12345",
  account: "premium",
};
// The demo workflow takes about 2.4 s, well within one wait, which the server caps at 30 s by default.
const WAIT_SECONDS = 20;
const CALL_TIMEOUT_MS = 60_000;
// The exit status of the Inspector CLI 2.12.0 when the call succeeded but the tool returned isError: true.
const EXIT_TOOL_IS_ERROR = 5;

const [serverCommand, embeddedDir, sharedDir] = process.argv.slice(2);
if (!serverCommand || !embeddedDir || !sharedDir) {
  console.error("Usage: node inspector-checks.mjs SERVER_COMMAND EMBEDDED_DIR SHARED_DIR");
  process.exit(2);
}

// The Inspector keeps its catalog and secrets under HOME, so it gets an empty one that is removed at the end.
const inspectorHome = mkdtempSync(join(tmpdir(), "inspector-home-"));

function runInspector(cwd, serverArgs, inspectorArgs) {
  const args = [INSPECTOR, "--cli", "--cwd", cwd, ...inspectorArgs, "--", serverCommand, ...serverArgs];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, HOME: inspectorHome },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: CALL_TIMEOUT_MS,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

// Parse the Inspector's JSON output, which must be the whole of stdout.
function parseOutput(run, method) {
  try {
    return JSON.parse(run.stdout);
  } catch {
    const detail = `${run.stderr.trim()} ${run.stdout.trim()}`.trim().slice(0, 500);
    throw new Error(`${method} printed no JSON (exit status ${run.code ?? run.signal}): ${detail}`);
  }
}

function succeeded(run, method) {
  const output = parseOutput(run, method);
  if (run.code !== 0) throw new Error(`${method} exited with status ${run.code ?? run.signal}: ${run.stderr.trim()}`);
  return output;
}

function callArgs(tool, args) {
  const pairs = Object.entries(args).map(
    ([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`,
  );
  return ["--method", "tools/call", "--tool-name", tool, "--tool-arg", ...pairs];
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function textOf(result) {
  return (result.content ?? []).map((block) => block.text ?? "").join(" ");
}

const passed = new Set();
const state = {};
let failed = 0;

// Run one named check after the checks it needs. A check whose prerequisite failed is reported as
// failed too, so an early failure does not shrink the number of checks.
async function check(name, needs, body) {
  const label = `inspector: ${name}`;
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

await check("tools/list shows both tools with schemas", [], async () => {
  const run = await runInspector(embeddedDir, ["serve", "--sandbox"], ["--method", "tools/list"]);
  const { tools } = succeeded(run, "tools/list");
  const byName = new Map(tools.map((tool) => [tool.name, tool]));
  const expected = {
    [START_TOOL]: { inputs: ["workflow_id", "version", "variables", "data"], required: ["workflow_id"] },
    [STATUS_TOOL]: { inputs: ["session_id", "wait_seconds"], required: ["session_id"] },
  };
  for (const [name, { inputs, required }] of Object.entries(expected)) {
    const tool = byName.get(name);
    assert(tool, `tool ${name} is missing; listed: ${[...byName.keys()].join(", ")}`);
    assert(tool.description, `${name} has no description`);
    const properties = Object.keys(tool.inputSchema?.properties ?? {});
    assert(
      JSON.stringify(properties.sort()) === JSON.stringify([...inputs].sort()),
      `${name} has the inputs ${properties.join(", ")}`,
    );
    assert(
      JSON.stringify(tool.inputSchema.required) === JSON.stringify(required),
      `${name} requires ${tool.inputSchema.required}`,
    );
    assert(tool.inputSchema.additionalProperties === false, `${name} accepts unknown arguments`);
    assert("session_id" in (tool.outputSchema?.properties ?? {}), `${name} has no outputSchema with session_id`);
  }
  assert("terminal" in byName.get(STATUS_TOOL).outputSchema.properties, `${STATUS_TOOL} outputSchema has no terminal`);
});

await check("start_workflow_session on the embedded sandbox", [], async () => {
  const startArguments = { workflow_id: DEMO_WORKFLOW_ID, variables: DEMO_VARIABLES };
  const run = await runInspector(embeddedDir, ["serve", "--sandbox"], callArgs(START_TOOL, startArguments));
  const result = succeeded(run, START_TOOL);
  assert(result.isError === false, `the tool returned an error: ${textOf(result)}`);
  const started = result.structuredContent;
  assert(
    started?.session_id?.startsWith("wfs_"),
    `session_id is not a wfs_ handle: ${JSON.stringify(started?.session_id)}`,
  );
  assert(
    started.workflow_name === "Payment Failure Assistance",
    `workflow_name is ${JSON.stringify(started.workflow_name)}`,
  );
  assert(started.status === "RUNNING", `status is ${JSON.stringify(started.status)}, expected RUNNING`);
  assert(started.terminal === false, "a freshly started session is already terminal");
});

await check("invalid workflow_id is a tool error naming the field", [], async () => {
  const run = await runInspector(embeddedDir, ["serve", "--sandbox"], callArgs(START_TOOL, { workflow_id: "ab/cd" }));
  const result = parseOutput(run, START_TOOL);
  assert(run.code === EXIT_TOOL_IS_ERROR, `expected exit status ${EXIT_TOOL_IS_ERROR}, got ${run.code ?? run.signal}`);
  assert(result.isError === true, `expected isError: true, got ${JSON.stringify(result.isError)}`);
  assert(textOf(result).includes("'workflow_id'"), `the error does not name workflow_id: ${textOf(result)}`);
});

await check("start_workflow_session in one server process", [], async () => {
  const run = await runInspector(
    sharedDir,
    ["serve"],
    callArgs(START_TOOL, { workflow_id: DEMO_WORKFLOW_ID, variables: DEMO_VARIABLES }),
  );
  const result = succeeded(run, START_TOOL);
  assert(result.isError === false, `the tool returned an error: ${textOf(result)}`);
  state.handle = result.structuredContent?.session_id;
  assert(state.handle?.startsWith("wfs_"), `session_id is not a wfs_ handle: ${JSON.stringify(state.handle)}`);
});

await check(
  "get_workflow_session_status in the next one",
  ["start_workflow_session in one server process"],
  async () => {
    const run = await runInspector(
      sharedDir,
      ["serve"],
      callArgs(STATUS_TOOL, { session_id: state.handle, wait_seconds: WAIT_SECONDS }),
    );
    const result = succeeded(run, STATUS_TOOL);
    assert(result.isError === false, `the tool returned an error: ${textOf(result)}`);
    const status = result.structuredContent;
    assert(status.session_id === state.handle, "the status names a different session_id than the start returned");
    assert(status.terminal === true, `the session did not end within ${WAIT_SECONDS} s; status ${status.status}`);
    assert(
      status.status === "COMPLETED",
      `the session ended with status ${JSON.stringify(status.status)}, expected COMPLETED`,
    );
    assert(
      status.masked_variables.includes("cardNumber"),
      `cardNumber is not masked: ${JSON.stringify(status.masked_variables)}`,
    );
  },
);

rmSync(inspectorHome, { recursive: true, force: true });
process.exit(failed > 0 ? 1 : 0);
