// Shared launcher for the Kith Chromium interop helpers (peer.mjs, bench.mjs).
//
// Launches Debian's Chromium (never a Playwright-downloaded browser) headless
// through playwright-core, in a fresh temporary profile that is removed again
// on close/exit.
//
// Why the page is served from a fake https origin: with no media permission,
// Chromium only gathers host candidates on the default-route interface (here
// eth0), never on loopback, even with --allow-loopback-in-peer-connection.
// Granting microphone/camera permission to a secure origin makes Chromium
// enumerate every interface, loopback included.  about:blank and data: URLs are
// not secure contexts and cannot be granted permissions, so the page lives at
// https://kith-peer.invalid/, which Playwright fulfils from memory (route): no
// DNS, no socket, no web server.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const ORIGIN = 'https://kith-peer.invalid';
export const PAGE_URL = `${ORIGIN}/`;

export const CHROMIUM_ARGS = [
  // Allow 127.0.0.1 / ::1 host candidates.
  '--allow-loopback-in-peer-connection',
  // Real IPs in candidates instead of <uuid>.local mDNS names.
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  // Belt and braces for the permission grant below (never shows a prompt).
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
];

const PAGE_HTML = '<!doctype html><meta charset="utf-8"><title>kith chromium peer</title><body></body>';

export function executablePath() {
  return process.env.CHROMIUM || '/usr/bin/chromium';
}

/** Launch Chromium. Returns { ctx, version, profileDir, firstPage(), newPage(), close() }. */
export async function launch({ log = () => {}, args = [] } = {}) {
  const exe = executablePath();
  const profileDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'kith-chromium-'));
  const rmProfile = () => {
    try {
      fs.rmSync(profileDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
    } catch (e) {
      log(`could not remove profile ${profileDir}: ${e.message}`);
    }
  };
  // Last resort if the process dies without close(): Playwright kills the
  // browser on exit itself; we remove the profile directory.
  process.once('exit', rmProfile);

  const t0 = performance.now();
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(profileDir, {
      executablePath: exe,
      headless: true,
      args: [...CHROMIUM_ARGS, ...args],
      // We clean up ourselves (profile dir); do not let Playwright install
      // its own signal handlers that would exit before that.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      timeout: 60_000,
    });
  } catch (e) {
    rmProfile();
    throw new Error(`failed to launch ${exe}: ${e.message}`);
  }
  await ctx.route(`${ORIGIN}/**`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: PAGE_HTML }),
  );
  await ctx.grantPermissions(['microphone', 'camera'], { origin: ORIGIN });
  const version = ctx.browser()?.version() ?? 'unknown';
  log(`launched ${exe} (Chromium ${version}) in ${(performance.now() - t0).toFixed(0)} ms, profile ${profileDir}`);

  let closed = false;
  let firstTaken = false;
  const preparePage = async (page) => {
    page.on('pageerror', (err) => log(`pageerror: ${err.message}`));
    page.on('console', (msg) => log(`console.${msg.type()}: ${msg.text()}`));
    page.on('crash', () => log('page crashed'));
    return page;
  };
  return {
    ctx,
    version,
    profileDir,
    /** The context's initial tab (or a new one), not yet navigated. */
    async firstPage() {
      if (!firstTaken) {
        firstTaken = true;
        const p = ctx.pages()[0];
        if (p) return preparePage(p);
      }
      return preparePage(await ctx.newPage());
    },
    async newPage() {
      return preparePage(await ctx.newPage());
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        await ctx.close();
      } catch (e) {
        log(`context close: ${e.message}`);
      }
      rmProfile();
      process.removeListener('exit', rmProfile);
    },
  };
}

/** True for an IPv4 loopback address or ::1. */
export function isLoopbackAddr(addr) {
  return /^127\./.test(addr) || addr === '::1' || addr === '0:0:0:0:0:0:0:1';
}
