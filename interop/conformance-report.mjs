// Compare the results of `conformance server --output-dir DIR` with conformance-expected-failures.yml.
//
// Usage: node conformance-report.mjs RESULTS_DIR EXPECTED_FAILURES_FILE SUITE_EXIT_CODE
//
// Prints one line per scenario, "PASS conformance: <scenario> ..." or "FAIL conformance: <scenario>: <reason>",
// and exits with 1 when any line is a FAIL. A scenario fails when any of its checks is a FAILURE or a
// WARNING, the rule the suite applies to its own expected-failures file. A scenario passes this report
// when it passed and is not listed, or failed and is listed. SUITE_EXIT_CODE is the exit status of the
// suite's own run with --expected-failures; a non-zero status that no scenario explains is a failure too.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { parseDocument } from "yaml";

const [resultsDir, expectedFile, suiteExitText] = process.argv.slice(2);
if (!resultsDir || !expectedFile || suiteExitText === undefined) {
  console.error("Usage: node conformance-report.mjs RESULTS_DIR EXPECTED_FAILURES_FILE SUITE_EXIT_CODE");
  process.exit(2);
}

// Read the listed scenarios and the reason that follows each one as a comment.
function readExpectedFailures(path) {
  const document = parseDocument(readFileSync(path, "utf8"));
  if (document.errors.length > 0) {
    throw new Error(`${path} is not valid YAML: ${document.errors[0].message}`);
  }
  const reasons = new Map();
  for (const item of document.get("server")?.items ?? []) {
    const reason = item.comment?.trim();
    if (!reason) {
      throw new Error(
        `${path}: the entry ${JSON.stringify(item.value)} has no reason; add one as a comment on its line`,
      );
    }
    reasons.set(String(item.value), reason);
  }
  return reasons;
}

// The suite names each result folder server-<scenario>-<ISO time with '-' for ':' and '.'>.
function scenarioOf(folder) {
  return basename(folder)
    .replace(/^server-/, "")
    .replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, "");
}

function problemsOf(checks) {
  return checks
    .filter((check) => check.status === "FAILURE" || check.status === "WARNING")
    .map((check) => `${check.status} ${check.id}: ${check.errorMessage ?? JSON.stringify(check.details ?? {})}`);
}

let failed = 0;
function report(ok, scenario, detail) {
  if (!ok) failed += 1;
  console.log(`${ok ? "PASS" : "FAIL"} conformance: ${scenario}${detail ? (ok ? ` (${detail})` : `: ${detail}`) : ""}`);
}

let expected;
try {
  expected = readExpectedFailures(expectedFile);
} catch (error) {
  report(false, basename(expectedFile), error.message);
  process.exit(1);
}

const suiteExit = Number(suiteExitText);
const ran = new Set();
const folders = existsSync(resultsDir)
  ? readdirSync(resultsDir)
      .filter((name) => name.startsWith("server-"))
      .sort()
  : [];
if (folders.length === 0) {
  report(false, "suite", `no scenario results in ${resultsDir}; the suite exited with status ${suiteExit}`);
  process.exit(1);
}

for (const folder of folders) {
  const scenario = scenarioOf(folder);
  ran.add(scenario);
  const checksFile = join(resultsDir, folder, "checks.json");
  const problems = existsSync(checksFile)
    ? problemsOf(JSON.parse(readFileSync(checksFile, "utf8")))
    : ["the scenario stopped with an error before it wrote checks.json"];
  const reason = expected.get(scenario);
  if (problems.length === 0 && reason === undefined) {
    report(true, scenario);
  } else if (problems.length > 0 && reason !== undefined) {
    report(true, scenario, `failed as expected: ${reason}`);
  } else if (problems.length > 0) {
    report(false, scenario, `failed and is not in ${basename(expectedFile)}: ${problems.join("; ")}`);
  } else {
    report(false, scenario, `passed but is listed in ${basename(expectedFile)}; remove its line`);
  }
}

for (const scenario of expected.keys()) {
  if (!ran.has(scenario)) {
    report(
      false,
      scenario,
      `is listed in ${basename(expectedFile)} but did not run; remove its line or check the suite version`,
    );
  }
}

if (suiteExit !== 0 && failed === 0) {
  report(
    false,
    "suite",
    `the suite exited with status ${suiteExit}, although every scenario matched the expected failures`,
  );
}
process.exit(failed > 0 ? 1 : 0);
