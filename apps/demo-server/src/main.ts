/**
 * `pnpm start`: builds (first start) or loads the models, then serves the OpenAI-compatible API, the detection
 * and verification API and the UI. Configuration is by environment; see docs/demo-server.md.
 */
import { hostname } from 'node:os';
import { buildModels } from '@tracemark/lab';
import { createApp } from './app';
import { ConfigError, readConfig } from './config';
import { ensureDataDir, loadApiToken, loadMasterKey, secretWarnings } from './secrets';

// Until the server's logger (pino) exists, lines in its JSON shape; then through it.
let log = (message: string) => {
  process.stdout.write(
    `${JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, hostname: hostname(), msg: message })}\n`,
  );
};

async function main(): Promise<void> {
  const config = readConfig();
  ensureDataDir(config.dataDir);
  log(`data directory ${config.dataDir}`);
  const { key, source, generated } = loadMasterKey(config);
  log(
    `${generated ? 'generated a new master key in' : 'master key from'} ${source} (fingerprint ${key.fingerprint})`,
  );
  const token = loadApiToken(config);
  for (const warning of secretWarnings()) log(`warning: ${warning}`);

  let stopRequested = false;
  const early = () => {
    stopRequested = true;
    log('stopping before the server started');
    process.exit(0);
  };
  process.once('SIGTERM', early);
  process.once('SIGINT', early);

  const started = performance.now();
  const models = await buildModels({
    profile: config.profile,
    key,
    spec: config.spec,
    modelDir: config.modelDir,
    log,
  });
  log(`models ready in ${((performance.now() - started) / 1000).toFixed(1)} s (profile ${config.profile})`);
  const { app, ctx, stop } = await createApp({ config, key, apiToken: token.token, models });
  log = (message) => app.log.info(message);
  process.off('SIGTERM', early);
  process.off('SIGINT', early);
  if (stopRequested) return;

  const address = await app.listen({ host: config.host, port: config.port });
  const base = address.replace('[::1]', 'localhost');
  log(`listening on ${base}`);
  log(`  UI        ${base}/`);
  log(`  API docs  ${base}/docs`);
  log(`  OpenAI    ${base}/v1 (models: ${[...ctx.models.keys()].join(', ')})`);
  log(
    ctx.servesLoopback
      ? '  serving routes are open (loopback); /api/detect, /api/verify and /api/jobs need the bearer token'
      : '  not on loopback: every route but the UI, /docs, /api/info, /api/lab and /api/health needs the bearer token',
  );
  log(
    token.file === undefined
      ? '  API token: from TRACEMARK_API_TOKEN'
      : `  API token: ${token.generated ? 'generated into' : 'read from'} ${token.file} (mode 0600)`,
  );

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log(`${signal} again: exiting now`);
      process.exit(1);
    }
    log(
      `${signal}: shutting down (${ctx.shutdown.activeStreams} open stream(s), up to ${config.shutdownGraceMs} ms to finish)`,
    );
    stop().then(
      () => {
        log('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log(`error while stopping: ${(error as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`[tracemark] configuration error: ${error.message}\n`);
    process.exit(2);
  }
  if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    process.stderr.write(`[tracemark] ${(error as Error).message}: set PORT to another port\n`);
    process.exit(1);
  }
  // One line, never a stack: an unexpected failure names its message only.
  const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
  process.stderr.write(`[tracemark] failed to start: ${message}\n`);
  process.exit(1);
});
