#!/usr/bin/env node
// The bin stays in place from install on, so that pnpm links it before the first build.
import { main } from '../dist/main.js';

process.exitCode = await main(process.argv.slice(2));
