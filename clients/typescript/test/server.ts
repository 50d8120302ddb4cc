// A real `tenantry serve` for the tests: free ports, a new data directory, embedded storage
// and the in-process bus whatever the environment says; stopped by stop().
// TENANTRY_BIN names the binary (default: the repository's target/debug/tenantry).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(fileURLToPath(import.meta.url), "../../../../..");

export interface Server {
  grpc: string;
  http: string;
  dataDir: string;
  /** Runs the server binary's other commands (`admin bootstrap`) on this server's data. */
  admin(...args: string[]): void;
  mailToken(to: string, kind: string): string | undefined;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const probe = createServer();
    probe.once("error", fail);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => ok(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export async function startServer(): Promise<Server> {
  const binary = process.env.TENANTRY_BIN ?? join(repo, "target", "debug", "tenantry");
  if (!existsSync(binary)) {
    throw new Error(`no server binary at ${binary}: cargo build -p tenantry, or set TENANTRY_BIN`);
  }
  const work = mkdtempSync(join(tmpdir(), "tenantry-ts-"));
  const dataDir = join(work, "data");
  const grpc = `127.0.0.1:${await freePort()}`;
  const http = `127.0.0.1:${await freePort()}`;
  // Defaults and flags only: TENANTRY_* variables are the server's configuration.
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith("TENANTRY_") && k !== "DATABASE_URL" && k !== "NATS_URL",
    ),
  );
  // Every test signs up from 127.0.0.1, through four transports: one address's sign-in
  // budget (the gateway's `auth` limits for anonymous callers) is raised so that it is not
  // what the tests measure.
  env.TENANTRY_GATEWAY__AUTH_PER_ADDRESS_PER_MINUTE = "10000";
  env.TENANTRY_GATEWAY__DEFAULT_RATE_LIMITS_PER_MINUTE__AUTH = "10000";
  const log = openSync(join(work, "server.log"), "w");
  const child: ChildProcess = spawn(
    binary,
    ["serve", "--grpc-addr", grpc, "--http-addr", http, "--data-dir", dataDir],
    { env, stdio: ["ignore", log, log] },
  );
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`the server exited: ${readFileSync(join(work, "server.log"), "utf8").slice(-4000)}`);
    }
    try {
      if ((await fetch(`http://${http}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error("the server was not ready within 120 s");
    await new Promise((r) => setTimeout(r, 100)); // readiness polling only
  }
  return {
    grpc,
    http,
    dataDir,
    admin(...args) {
      execFileSync(binary, ["admin", ...args, "--data-dir", dataDir], { env, stdio: "pipe" });
    },
    mailToken(to, kind) {
      // The default mailer writes each mail as a file in <data_dir>/mail/.
      const dir = join(dataDir, "mail");
      const files = readdirSync(dir).filter((f) => f.includes(kind)).sort().reverse();
      for (const file of files) {
        const lines = readFileSync(join(dir, file), "utf8").split("\n");
        if (lines.includes(`To: ${to}`)) {
          return lines.find((l) => l.startsWith("token: "))?.slice("token: ".length);
        }
      }
      return undefined;
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(work, { recursive: true, force: true });
    },
  };
}
