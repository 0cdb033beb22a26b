import { Command, InvalidArgumentError, Option } from 'commander';
import { adminClient, AdminClientError, ADMIN_FETCH_ENTRIES_MAX, type AdminClient, type FetchOptions, type TrustInput } from '../admin/index.js';
import { loadConfig, type TrustConfig } from '../../router/index.js';
import { positiveInt } from './arguments.js';
import { CliError, EXIT_CONFIG, EXIT_FAILURE, EXIT_UNAVAILABLE, EXIT_USAGE } from './exit-codes.js';
import { graphDot, graphText, linksText, namesFrom, routeText } from './render.js';
import type { CliIo } from './index.js';

/**
 * The commands that talk to a running node through its admin service: `graph`, `route`,
 * `links` and `trust set|block|enable|remove`. Each finds the service from --admin
 * host:port or from the node's config (admin.listen), and reports a node that is not
 * there, or a request it refuses, in one line. `graph`, `route` and `links` fetch every
 * page of the node's answer (up to ADMIN_FETCH_ENTRIES_MAX, or --limit), saying on
 * stderr how far a long fetch has come and when it stopped short.
 */

/** A long fetch says how far it has come (on stderr) each time it passes a multiple of this many entries. */
export const FETCH_PROGRESS_ENTRIES = 5_000;

interface WhereOptions {
  admin?: string;
  config?: string;
}

const LIMIT_HELP = `
An answer comes in pages; all of them are fetched, up to ${ADMIN_FETCH_ENTRIES_MAX.toLocaleString('en')} entries
(servers, links, each server a link reaches or carries...). --limit N stops after N.`;

const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
const WHERE_HELP = `
The node is found by --admin host:port (its admin.listen), or by --config FILE (the
node's YAML, which must set admin: { listen: 127.0.0.1:PORT }).`;

function hostPort(value: string): string {
  if (!HOST_PORT.test(value)) throw new InvalidArgumentError('must be host:port, e.g. 127.0.0.1:5002');
  return value;
}

function withWhere(command: Command): Command {
  return command
    .option('-a, --admin <host:port>', "the node's admin service address (admin.listen in its config)", hostPort)
    .option('-c, --config <file>', "the node's YAML configuration, to read admin.listen from")
    .addHelpText('after', WHERE_HELP);
}

/** Where the node's admin service answers, from --admin or the config's admin.listen. */
export function adminAddress(options: WhereOptions): string {
  if (options.admin && options.config) throw new CliError('give --admin or --config, not both', EXIT_USAGE);
  if (options.admin) return options.admin;
  if (!options.config) throw new CliError("say where the node is: --admin host:port (its admin.listen) or --config FILE", EXIT_USAGE);
  const listen = loadConfig(options.config).admin?.listen;
  if (!listen) throw new CliError(`${options.config} sets no admin.listen: add admin: { listen: 127.0.0.1:5002 } and restart the node, or give --admin`, EXIT_CONFIG);
  if (listen.endsWith(':0')) throw new CliError(`${options.config}: admin.listen ${listen} picks a free port at start: give the port the node printed with --admin`, EXIT_CONFIG);
  return listen;
}

const EXIT_OF: Record<AdminClientError['code'], number> = {
  unavailable: EXIT_UNAVAILABLE,
  timeout: EXIT_UNAVAILABLE,
  'not-admin': EXIT_UNAVAILABLE,
  'invalid-argument': EXIT_USAGE,
  'not-found': EXIT_FAILURE,
  'failed-precondition': EXIT_FAILURE,
  'bad-page': EXIT_FAILURE,
  failed: EXIT_FAILURE,
};

interface LimitOptions {
  limit?: number;
}

function withLimit(command: Command): Command {
  return command.option('--limit <entries>', `stop after this many entries (1 to ${ADMIN_FETCH_ENTRIES_MAX}; default: all)`, positiveInt(ADMIN_FETCH_ENTRIES_MAX)).addHelpText('after', LIMIT_HELP);
}

/** How the CLI fetches a paged answer: to --limit, with a progress line on stderr every FETCH_PROGRESS_ENTRIES, and a line when it stopped short. */
function fetching(io: CliIo, what: string, limit?: number): FetchOptions {
  let before = 0;
  return {
    ...(limit !== undefined ? { limit } : {}),
    onPage({ pages, entries, last, cut }) {
      const passed = Math.floor(entries / FETCH_PROGRESS_ENTRIES) > Math.floor(before / FETCH_PROGRESS_ENTRIES);
      before = entries;
      if (passed && !last) io.err(`${what}: ${entries} entries in ${pages} pages so far...`);
      if (cut === 'limit') io.err(`${what}: stopped at --limit ${limit}; the node has more`);
      if (cut === 'bound') io.err(`${what}: stopped at ${ADMIN_FETCH_ENTRIES_MAX} entries, the most one fetch gathers; the node has more (--limit to choose fewer)`);
    },
  };
}

/** Runs `use` with a client of the node's admin service; its failures become one-line CLI errors. */
async function withAdmin<T>(options: WhereOptions, use: (client: AdminClient) => Promise<T>): Promise<T> {
  const client = adminClient(adminAddress(options));
  try {
    return await use(client);
  } catch (error) {
    if (!(error instanceof AdminClientError)) throw error;
    const refused = error.code === 'invalid-argument' || error.code === 'not-found' || error.code === 'failed-precondition';
    throw new CliError(refused ? `the node at ${error.address} refused: ${error.message}` : error.message, EXIT_OF[error.code]);
  } finally {
    client.close();
  }
}

const printJson = (io: CliIo, value: unknown) => io.out(JSON.stringify(value, null, 2));

function tokenPair(value: string): { token_for_accepting: string; token_for_connecting: string } {
  const halves = value.split(':');
  if (halves.length !== 2) throw new InvalidArgumentError("must be '<token_for_accepting>:<token_for_connecting>', two tokens joined by one ':'");
  return { token_for_accepting: halves[0]!, token_for_connecting: halves[1]! };
}

function addTrustCommands(cli: Command, io: CliIo): void {
  const trust = cli
    .command('trust')
    .description('add, change, block, enable or remove a trust on a running node (journalled in its audit log)')
    .addHelpText('after', '\nTokens are write-only: the node never shows them back. Make one with `trellis token`.');

  withWhere(
    trust
      .command('set')
      .description('add a trust, or replace one with the same server id (all its fields, tokens included)')
      .requiredOption('--server-id <uuid>', "the remote server's id")
      .requiredOption('--name <name>', 'a short label for the link')
      .addOption(new Option('--kind <kind>', 'the remote server kind (default: CTS, as in the config)').choices(['CTS', 'ETS', 'RTS', 'TTS']))
      .option('--endpoint <host:port>', 'where to dial the remote (TCP 5001); without it this node only accepts')
      .requiredOption('--tokens <accept:connect>', "'<token_for_accepting>:<token_for_connecting>': the remote presents the first, we present the second", tokenPair)
      .option('--identity-key <base64>', "the remote's public key to pin, as its `trellis keygen` printed it")
      .option('--allow-trust-search', 'the remote may search our corporate address book')
      .option('--disabled', 'add it blocked: it carries nothing until `trellis trust enable`'),
  ).action(async (options: WhereOptions & { serverId: string; name: string; kind?: TrustConfig['kind']; endpoint?: string; tokens: ReturnType<typeof tokenPair>; identityKey?: string; allowTrustSearch?: boolean; disabled?: boolean }) => {
    const input: TrustInput = {
      server_id: options.serverId,
      name: options.name,
      ...(options.kind ? { kind: options.kind } : {}),
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...options.tokens,
      status: options.disabled ? 'disabled' : 'enabled',
      allow_trust_search: options.allowTrustSearch ?? false,
      ...(options.identityKey ? { identity_key: options.identityKey } : {}),
    };
    const { added, trust: held } = await withAdmin(options, (client) => client.setTrust(input));
    const reach = held.endpoint ? `dials ${held.endpoint}` : 'accepts only (the remote dials)';
    io.out(`trust ${added ? 'added' : 'changed'}: ${held.name} (${held.server_id}), ${held.kind} ${held.role}, ${held.status}, ${reach}`);
  });

  const statusCommand = (name: string, status: TrustConfig['status'], description: string, done: string) =>
    withWhere(trust.command(name).description(description).requiredOption('--server <uuid>', "the trusted server's id")).action(async (options: WhereOptions & { server: string }) => {
      await withAdmin(options, (client) => client.setTrustStatus(options.server, status));
      io.out(`trust ${options.server} ${done}`);
    });
  statusCommand('block', 'disabled', 'block a trust (status disabled): its link drops and it carries nothing', 'blocked: its link is dropped and it carries nothing');
  statusCommand('enable', 'enabled', 'enable a blocked trust: the node links with it again', 'enabled');

  withWhere(trust.command('remove').description('remove a trust: its link drops and the node forgets it').requiredOption('--server <uuid>', "the trusted server's id")).action(
    async (options: WhereOptions & { server: string }) => {
      await withAdmin(options, (client) => client.removeTrust(options.server));
      io.out(`trust ${options.server} removed`);
    },
  );
}

export function addAdminCommands(cli: Command, io: CliIo): void {
  withLimit(withWhere(
    cli
      .command('graph')
      .description('show the routing topology as a running node sees it: servers, kinds, link colours, what each link carries')
      .addOption(new Option('--json', 'print the graph as JSON').conflicts('dot'))
      .addOption(new Option('--dot', 'print a Graphviz digraph (RTS green, ETS purple, CTS blue; links green up, purple blocked, red down)').conflicts('json')),
  ))
    .addHelpText('after', '\nDraw it: trellis graph --admin 127.0.0.1:5002 --dot | dot -Tsvg > graph.svg')
    .action(async (options: WhereOptions & LimitOptions & { json?: boolean; dot?: boolean }) => {
      const graph = await withAdmin(options, (client) => client.graph(fetching(io, 'graph', options.limit)));
      if (options.json) printJson(io, graph);
      else for (const line of options.dot ? graphDot(graph) : graphText(graph)) io.out(line);
    });

  withLimit(withWhere(
    cli
      .command('route')
      .description("explain a chat's routes: for each server it lives on, the path taken, the alternatives and why each was or was not taken")
      .requiredOption('--chat <id>', "the chat's id")
      .option('--json', 'print the route as JSON'),
  )).action(async (options: WhereOptions & LimitOptions & { chat: string; json?: boolean }) => {
    // The graph only for the servers' names: fetched whole (to its bound), whatever --limit says of the route.
    const [route, graph] = await withAdmin(options, async (client) => [await client.chatRoute(options.chat, fetching(io, 'route', options.limit)), await client.graph(fetching(io, 'graph (for names)'))] as const);
    if (options.json) printJson(io, route);
    else for (const line of routeText(route, graph.self.name, namesFrom(graph))) io.out(line);
  });

  withLimit(withWhere(
    cli
      .command('links')
      .description("show each link's counters (frames, events, bytes each way) and its destination queues (depth, oldest unacknowledged)")
      .option('--json', 'print the counters as JSON'),
  )).action(async (options: WhereOptions & LimitOptions & { json?: boolean }) => {
    const report = await withAdmin(options, (client) => client.links(fetching(io, 'links', options.limit)));
    if (options.json) printJson(io, report);
    else for (const line of linksText(report)) io.out(line);
  });

  addTrustCommands(cli, io);
}
