// Network namespaces for the end-to-end tests: a browser (or a TURN server) on its own
// network, joined to the host by a veth pair, shaped with tbf or filtered with nftables
// (never netem). What a test creates here is removed by `tearDown()`, on exit and on
// SIGINT/SIGTERM; a later run removes what a killed run left behind (its pid is gone).
//
//   const net = new Network('sbq');          // names: sbq<pid>, sbq<pid>h, ...
//   const why = net.skipReason(['ip', 'nft']); // null when root and the tools exist
//   net.removeStale();
//   net.addNamespace({ ns, hostIf, nsIf, hostIp, nsIp });
//   const wrapper = net.chromium(ns);          // launchBrowser({ executablePath: wrapper })

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromiumPath } from './lib.mjs';

/** The first executable `name` on PATH or in the sbin directories, or null. */
export function findExecutable(name) {
  const dirs = [...(process.env.PATH || '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return null;
}

export const TOOLS = { ip: findExecutable('ip'), tc: findExecutable('tc'), nft: findExecutable('nft') };
export const IP = TOOLS.ip;
export const TC = TOOLS.tc;
export const NFT = TOOLS.nft;

/** Runs a command synchronously (10 s at most), returning its stdout; throws on failure. */
export function run(cmd, args, { timeout = 10_000, input } = {}) {
  return execFileSync(cmd, args, { stdio: [input == null ? 'ignore' : 'pipe', 'pipe', 'pipe'], encoding: 'utf8', timeout, input });
}

/** The first line of a failed command's stderr (or its message). */
export const errText = (err) => (err.stderr?.toString().trim() || err.message).split('\n')[0];

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

const quote = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The namespaces and veth pairs of one test file, all named `<prefix><pid>...`. */
export class Network {
  constructor(prefix) {
    this.prefix = prefix;
    this.base = `${prefix}${process.pid}`;
    this.namespaces = new Set();
    this.links = new Set();
    this.wrapperDir = null;
    this.onExit = [];
    process.on('exit', () => this.tearDown());
    for (const signal of ['SIGINT', 'SIGTERM']) {
      process.once(signal, () => {
        for (const f of this.onExit) {
          try { f(); } catch { /* best effort */ }
        }
        this.tearDown();
        process.exit(130);
      });
    }
  }

  /** Why the tests cannot run here (not root, a tool missing), or null. */
  skipReason(tools = ['ip']) {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      return `needs root for ${tools.join(', ')} (run the tests as root)`;
    }
    const missing = tools.filter((t) => !TOOLS[t]);
    return missing.length ? `needs ${missing.join(', ')} (iproute2, nftables): run scripts/install-test-deps.sh` : null;
  }

  /** Removes the namespaces and host links an earlier, killed run of this file left. */
  removeStale() {
    const ours = new RegExp(`^${this.prefix}(\\d+)(\\w*)$`);
    try {
      for (const line of run(IP, ['netns', 'list']).split('\n')) {
        const m = ours.exec(line.trim().split(/\s+/)[0] || '');
        if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) {
          try { run(IP, ['netns', 'del', m[0]]); } catch { /* gone meanwhile */ }
        }
      }
      for (const line of run(IP, ['-o', 'link', 'show']).split('\n')) {
        const name = /^\d+:\s+([^@:\s]+)/.exec(line)?.[1] || '';
        const m = ours.exec(name);
        if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) {
          try { run(IP, ['link', 'del', name]); } catch { /* gone meanwhile */ }
        }
      }
    } catch {
      // listing failed: addNamespace reports what matters
    }
  }

  /** Namespace `ns` joined to the host by veth `hostIf` ↔ `nsIf`; throws with the reason. */
  addNamespace({ ns, hostIf, nsIf, hostIp, nsIp, prefixLen = 30 }) {
    const holders = run(IP, ['-o', '-4', 'addr', 'show', 'to', `${hostIp}/32`]).trim();
    if (holders) throw new Error(`${hostIp} is already assigned on this machine (${holders.split(/\s+/)[1]})`);
    try {
      run(IP, ['netns', 'add', ns]);
    } catch (err) {
      throw new Error(`ip netns add failed (${errText(err)}): network namespaces unavailable`);
    }
    this.namespaces.add(ns);
    try {
      run(IP, ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', ns]);
    } catch (err) {
      throw new Error(`creating a veth pair failed (${errText(err)})`);
    }
    this.links.add(hostIf);
    run(IP, ['addr', 'add', `${hostIp}/${prefixLen}`, 'dev', hostIf]);
    run(IP, ['link', 'set', hostIf, 'up']);
    run(IP, ['-n', ns, 'addr', 'add', `${nsIp}/${prefixLen}`, 'dev', nsIf]);
    run(IP, ['-n', ns, 'link', 'set', nsIf, 'up']);
    run(IP, ['-n', ns, 'link', 'set', 'lo', 'up']);
  }

  /** Loads nftables `rules` (nft -f syntax) in namespace `ns`. */
  nft(ns, rules) {
    run(IP, ['netns', 'exec', ns, NFT, '-f', '-'], { input: rules });
  }

  /** A script that starts Chromium inside `ns` (with `args` first); playwright's pipe passes through exec. */
  chromium(ns, args = []) {
    this.wrapperDir ??= fs.mkdtempSync(path.join(os.tmpdir(), `switchboard-e2e-${this.prefix}-`));
    const wrapper = path.join(this.wrapperDir, `chromium-in-${ns}`);
    const extra = args.map(quote).join(' ');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${quote(IP)} netns exec ${quote(ns)} ${quote(chromiumPath)} ${extra} "$@"\n`, { mode: 0o755 });
    return wrapper;
  }

  /** GET `url` from inside `ns` with this Node.js (expects 200): proves the veth path works. */
  checkReaches(ns, url) {
    const script = `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(5000) })
      .then((r) => { process.stdout.write(String(r.status)); process.exit(r.status === 200 ? 0 : 1); })
      .catch((e) => { process.stdout.write(String(e.cause?.code || e.message)); process.exit(1); });`;
    try {
      run(IP, ['netns', 'exec', ns, process.execPath, '-e', script]);
    } catch (err) {
      assert.fail(`from namespace ${ns}, GET ${url} failed: ${err.stdout || errText(err)}`);
    }
  }

  /** Removes everything this file created. Synchronous (it also runs on exit); never throws. */
  tearDown() {
    for (const link of this.links) {
      try { run(IP, ['link', 'del', link]); } catch { /* goes with the namespace */ }
    }
    this.links.clear();
    for (const ns of this.namespaces) {
      try { run(IP, ['netns', 'del', ns]); } catch { /* best effort */ }
    }
    this.namespaces.clear();
    if (this.wrapperDir) {
      fs.rmSync(this.wrapperDir, { recursive: true, force: true });
      this.wrapperDir = null;
    }
  }
}
