import { Command, CommanderError } from 'commander';
import { startAdminServer } from '../admin/index.js';
import { createLogger, loadConfig, TrellisNode, upstreamOf, type NodeConfig } from '../../router/index.js';
import { KafkaError, kafkaSettings, startKafkaPublisher } from '../kafka/index.js';
import { openReplication, RedisUnavailable } from '../redis/index.js';
import { addAdminCommands } from './admin-commands.js';
import { positiveInt } from './arguments.js';
import { runDemo } from '../demo/index.js';
import { CliError, exitCodeOf, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE } from './exit-codes.js';
import { newToken, writeIdentityKey } from './keys.js';

export { CliError, exitCodeOf, EXIT_CONFIG, EXIT_USAGE } from './exit-codes.js';

/** Demo size bounds: enough to show every route and its latency, small enough to finish in seconds. */
const DEMO_MESSAGES_DEFAULT = 25;
const DEMO_MESSAGES_MAX = 10_000;

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const EXIT_CODES_HELP = `
Exit codes:
  0   done
  1   failed at run time (see the message)
  64  bad command line
  69  the store could not be opened, or no node answers at the admin address
  73  a file could not be created
  78  the configuration is invalid (the message names the key)`;

/** What `check` adds below its summary line: the upstream, the trusts by role, the admin address. */
function topologyLines(config: NodeConfig): string[] {
  const upstream = upstreamOf(config);
  const count = (role: string) => config.trusts.filter((trust) => trust.role === role).length;
  return [
    upstream
      ? `upstream: ${upstream.kind} ${upstream.name} (${upstream.server_id}) at ${upstream.endpoint}${upstream.status === 'enabled' ? '' : ', disabled'}`
      : `upstream: none${config.server.kind === 'RTS' ? ' (an RTS is the top of its region)' : ''}`,
    `trusts: ${count('partner')} partner, ${count('downstream')} downstream, ${count('transit')} transit`,
    ...(config.admin ? [`admin: ${config.admin.listen} (loopback only, no authentication)`] : []),
  ];
}

/**
 * Runs the node with what its config and environment add: replicas sharing its links
 * (REDIS_URL), its admin service (admin.listen), the projections to Kafka
 * (KAFKA_BROKERS); until SIGINT or SIGTERM. Parts stop in the reverse of their start,
 * also when a later part cannot start: nothing is left running behind an error.
 */
async function start(configFile: string, io: CliIo): Promise<void> {
  const config = loadConfig(configFile);
  const kafka = kafkaSettings(config, process.env);
  const running: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of running.splice(0).reverse()) await stop().catch(() => undefined);
  };
  try {
    const replication = await openReplication(config, process.env).catch(unavailableAsCliError);
    if (replication) running.push(() => replication.close());
    const node = await TrellisNode.start(config, replication ? { leases: replication.leases } : {});
    running.push(() => node.stop());
    replication?.attach(node);
    io.out(`store: ${node.store.description}`);
    if (replication) io.out(`replicas: ${replication.description}`);
    if (kafka) {
      // The projections to Kafka when KAFKA_BROKERS or kafka.brokers names one (gateways/kafka); before the
      // admin service, so that its announcement means the whole node is up (what scripts and tests wait for).
      const log = createLogger(config.log_level).child({ node: config.server.name });
      const publisher = await startKafkaPublisher(node, kafka, log, replication ? { leases: replication.leases } : {}).catch(unavailableAsCliError);
      running.push(() => publisher.stop());
      io.out(`projections: Kafka at ${kafka.brokers.join(', ')}, topics ${Object.values(kafka.topics).join(', ')}`);
    }
    if (config.admin) {
      const admin = await startAdminServer(node, config.admin.listen, replication ? { replicas: () => replication.replicas() } : {});
      running.push(() => admin.stop());
      io.out(`admin service on ${admin.address} (loopback only): trellis graph --admin ${admin.address}`);
    }
  } catch (error) {
    await stopAll();
    throw error;
  }
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  io.err('stopping: closing the projections, the admin service, links and the store');
  await stopAll();
}

/** An engine that does not answer (Kafka, Redis) is exit 69 with its one line, like the store. */
function unavailableAsCliError(error: unknown): never {
  if (error instanceof KafkaError || error instanceof RedisUnavailable) throw new CliError(error.message, EXIT_UNAVAILABLE);
  throw error;
}

function program(io: CliIo): Command {
  const cli = new Command('trellis')
    .description('Trellis: event-sourced federation and trust router for corporate messengers')
    .configureOutput({ writeOut: (text) => io.out(text.trimEnd()), writeErr: (text) => io.err(text.trimEnd()) })
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', EXIT_CODES_HELP);

  cli
    .command('start')
    .description('run one server\'s node: listen for trust links (TCP 5001 by default) and dial every enabled trust')
    .requiredOption('-c, --config <file>', 'the node\'s YAML configuration')
    .addHelpText('after', '\nStops cleanly on SIGINT or SIGTERM. Check a configuration without starting: trellis check --config FILE')
    .action(async (options: { config: string }) => start(options.config, io));

  cli
    .command('check')
    .description('validate a configuration file and print what it sets up, without starting anything')
    .requiredOption('-c, --config <file>', 'the node\'s YAML configuration')
    .action((options: { config: string }) => {
      const config = loadConfig(options.config);
      io.out(`${options.config}: valid. ${config.server.kind} ${config.server.name} (${config.server.id}) listens on ${config.listen}, ${config.tls ? 'TLS' : 'plaintext'}, ${config.trusts.length} trust(s)`);
      for (const line of topologyLines(config)) io.out(`  ${line}`);
    });

  cli
    .command('keygen')
    .description('create this server\'s Ed25519 identity key and print its public key (what a peer may pin)')
    .requiredOption('-o, --out <file>', 'where to write the private key (PEM, mode 0600)')
    .option('-f, --force', 'replace an existing key (peers that pinned the old one will refuse the link)')
    .action((options: { out: string; force?: boolean }) => {
      const publicKey = writeIdentityKey(options.out, options.force);
      io.out(`wrote ${options.out}\nidentity_key (public, base64): ${publicKey}`);
    });

  cli
    .command('token')
    .description('print a new random token for one half of a token pair')
    .addHelpText('after', '\nPairing: your token_for_accepting is the peer\'s token_for_connecting, and the other way round.')
    .action(() => io.out(newToken()));

  cli
    .command('demo')
    .description('run the reference federation (RTS, ETS and four CTS) in this process: post end-to-end encrypted messages in every chat, cut and restore the partner trust, and check that every member server ends with the same log')
    .option('--fixtures <folder>', 'the reference federation\'s configs, one YAML per server', 'fixtures/federation')
    .option('-n, --messages <count>', `messages each member server posts into each chat (at most ${DEMO_MESSAGES_MAX})`, positiveInt(DEMO_MESSAGES_MAX), DEMO_MESSAGES_DEFAULT)
    .option('--log-file <file>', 'where the nodes\' structured logs go', 'data/demo.log')
    .option('--processes', 'run each server in a process of its own (default: all in this one)')
    .addHelpText('after', '\nThe same servers start one by one with: trellis start --config fixtures/federation/<name>.yaml')
    .action(async (options: { fixtures: string; messages: number; logFile: string; processes?: boolean }) =>
      runDemo({ fixtures: options.fixtures, messages: options.messages, logFile: options.logFile, processes: options.processes === true, print: io.out }),
    );

  addAdminCommands(cli, io);

  const configure = (commands: readonly Command[]): void => {
    for (const command of commands) {
      command.exitOverride().configureOutput({ writeOut: (t) => io.out(t.trimEnd()), writeErr: (t) => io.err(t.trimEnd()) });
      configure(command.commands);
    }
  };
  configure(cli.commands);
  return cli;
}

/** Parses and runs one command line; returns the exit code instead of exiting, so tests can call it. */
export async function runCli(argv: string[], io: CliIo = { out: console.log, err: console.error }): Promise<number> {
  try {
    await program(io).parseAsync(argv, { from: 'user' });
    return EXIT_OK;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    io.err(`trellis: ${error instanceof Error ? error.message : String(error)}`);
    return exitCodeOf(error);
  }
}

/** Runs one command line with its output gathered, not printed: for callers that read what it says (tests, scripts in-process). */
export async function runCliCaptured(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (line) => out.push(line), err: (line) => err.push(line) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}
