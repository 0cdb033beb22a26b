#!/usr/bin/env node
// The installed command: runs the compiled CLI (npm install builds it into dist/).
import { runCli } from '../dist/gateways/index.js';

process.exitCode = await runCli(process.argv.slice(2));
