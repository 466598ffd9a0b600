// Headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM) through playwright-core.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export function chromiumMissing() {
  return existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`;
}

// A persistent context in a fresh profile folder, removed again by close().
export async function launch() {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'realtime-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 720 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Pages fulfilled by the test (REALTIME_WEB_FROM_TREE) have no IP address space of their own,
      // and Chromium's Local Network Access checks would then block their loopback WebSocket.
      ...(process.env.REALTIME_WEB_FROM_TREE === '1' ? ['--disable-features=LocalNetworkAccessChecks'] : []),
    ],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// Records every request a page makes and every console error / page error, for later assertions.
export function instrument(page) {
  const log = { requests: [], errors: [] };
  page.on('request', (r) => log.requests.push(r.url()));
  page.on('pageerror', (e) => log.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') log.errors.push(`console: ${m.text()}`);
  });
  return log;
}

// The server embeds web/index.html and clients/js/realtime-client.js at build time. With
// REALTIME_WEB_FROM_TREE=1 the browser gets the working-tree files instead (for editing the page
// without rebuilding); everything else still comes from the server. Returns a note on staleness.
export async function webFiles(context, origin, repo) {
  const files = {
    '/': path.join(repo, 'web/index.html'),
    '/realtime-client.js': path.join(repo, 'clients/js/realtime-client.js'),
  };
  const stale = [];
  for (const [route, file] of Object.entries(files)) {
    const served = await (await fetch(origin + route)).text();
    if (served !== readFileSync(file, 'utf8')) stale.push(path.relative(repo, file));
  }
  if (process.env.REALTIME_WEB_FROM_TREE === '1') {
    await context.route(`${origin}/realtime-client.js`, (r) =>
      r.fulfill({ contentType: 'text/javascript; charset=utf-8', body: readFileSync(files['/realtime-client.js']) }),
    );
    await context.route((u) => u.origin === origin && u.pathname === '/', (r) =>
      r.fulfill({ contentType: 'text/html; charset=utf-8', body: readFileSync(files['/']) }),
    );
    return stale.length ? `serving working-tree files; the binary embeds older ${stale.join(', ')}` : null;
  }
  return stale.length ? `the binary embeds older ${stale.join(', ')} than the working tree: rebuild, or set REALTIME_WEB_FROM_TREE=1` : null;
}
