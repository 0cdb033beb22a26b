import type { LinksReport } from '../admin/index.js';
import type { ChatRouteView, DestinationQueue, GraphView, LinkCounters, LinkStats, RouteCandidate, ServerKind } from '../../router/index.js';

/**
 * What `trellis graph`, `route` and `links` print for operators: aligned text, and the
 * graph as Graphviz DOT with domain.md's colours (RTS green, ETS purple, CTS blue;
 * links green up, purple blocked, red down). Pure: views in, lines out.
 */

/** The first block of a UUID: enough to tell servers apart on one screen. */
export const shortId = (id: string): string => id.slice(0, 8);

/** Server ids to names, as the graph knows them; an unknown id shows as its short form. */
export type NameOf = (serverId: string) => string;

export function namesFrom(graph: GraphView): NameOf {
  const names = new Map(graph.servers.map((server) => [server.id, server.name]));
  return (serverId) => names.get(serverId) ?? shortId(serverId);
}

/** Rows padded into columns two spaces apart (the last column unpadded). */
function table(rows: string[][], indent = '  '): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)));
  return rows.map((row) => (indent + row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index]!))).join('  ')).trimEnd());
}

const list = (items: string[]): string => (items.length > 0 ? items.join(', ') : '-');

export function graphText(graph: GraphView): string[] {
  const nameOf = namesFrom(graph);
  const servers = graph.servers.map((server) => [
    server.kind || '?',
    server.name,
    shortId(server.id),
    server.id === graph.self.id ? 'self' : server.status || '-',
    String(server.chats),
    server.upstream ? nameOf(server.upstream) : '-',
  ]);
  const links = graph.links.map((link) => [link.name, link.role, link.status, String(link.reachable.length), list(link.carries.map(nameOf))]);
  return [
    `${graph.self.name} (${graph.self.kind} ${shortId(graph.self.id)}): ${graph.servers.length} server(s) known, ${graph.links.length} trust(s)`,
    'servers:',
    ...table([['kind', 'name', 'id', 'status', 'chats', 'upstream'], ...servers]),
    'links:',
    ...(links.length > 0 ? table([['name', 'role', 'status', 'reachable', 'carries'], ...links]) : ['  none']),
  ];
}

/** domain.md's graph colours by server kind; a TTS or an unknown server is grey. */
const KIND_COLOURS: Record<ServerKind | '', string> = { RTS: 'green', ETS: 'purple', CTS: 'blue', TTS: 'grey40', '': 'grey60' };

const dotEscape = (value: string): string => value.replace(/[\\"]/g, (c) => `\\${c}`);
const dotString = (value: string): string => `"${dotEscape(value)}"`;

export function graphDot(graph: GraphView): string[] {
  const lines = [
    'digraph trellis {',
    `  label=${dotString(`as ${graph.self.name} sees it`)}; labelloc=t;`,
    '  node [shape=box, style="rounded,filled", fontcolor=white];',
    '  edge [fontsize=10];',
  ];
  for (const server of graph.servers) {
    const self = server.id === graph.self.id ? ', penwidth=3, color=black' : '';
    const label = [server.name, `${server.kind || '?'} ${shortId(server.id)}`, `${server.chats} chat(s)`].map(dotEscape).join('\\n');
    lines.push(`  ${dotString(server.id)} [label="${label}", fillcolor=${KIND_COLOURS[server.kind]}${self}];`);
  }
  const linked = new Set(graph.links.map((link) => link.peerId));
  for (const link of graph.links) lines.push(`  ${dotString(graph.self.id)} -> ${dotString(link.peerId)} [color=${link.status}, label=${dotString(link.role)}];`);
  // Upstreams that the servers' own records name, where no link of ours already draws them.
  for (const server of graph.servers) {
    if (!server.upstream || (server.id === graph.self.id && linked.has(server.upstream))) continue;
    lines.push(`  ${dotString(server.id)} -> ${dotString(server.upstream)} [color=grey50, style=dashed, label="upstream"];`);
  }
  lines.push('}');
  return lines;
}

function candidateRow(candidate: RouteCandidate, selfName: string, nameOf: NameOf): string[] {
  const path = [selfName, ...candidate.path.map(nameOf)].join(' → ');
  return [candidate.taken ? 'taken' : 'not taken', candidate.class, `via ${candidate.viaName || nameOf(candidate.via)}`, path, candidate.why];
}

export function routeText(route: ChatRouteView, selfName: string, nameOf: NameOf): string[] {
  if (!route.known) return [`chat ${route.chatId}: this node holds no event of it (is the id right, and does the chat live on this server?)`];
  const lines = [`chat ${route.chatId}: policy ${route.policy}; lives on ${list(route.servers.map(nameOf))}`];
  if (route.destinations.length === 0) lines.push('  every member is on this server: its events go nowhere else');
  for (const destination of route.destinations) {
    const chosen = destination.path.length > 0 ? destination.path.map(nameOf).join(' → ') : 'no path now: its events wait';
    lines.push(`to ${destination.name} (${shortId(destination.serverId)}): ${chosen}`);
    if (destination.candidates.length === 0) lines.push('  no trust of this node reaches it');
    lines.push(...table(destination.candidates.map((candidate) => candidateRow(candidate, selfName, nameOf)), '  '));
  }
  return lines;
}

function bytes(count: number): string {
  if (count < 1024) return `${count} B`;
  if (count < 1024 ** 2) return `${(count / 1024).toFixed(1)} KiB`;
  if (count < 1024 ** 3) return `${(count / 1024 ** 2).toFixed(1)} MiB`;
  return `${(count / 1024 ** 3).toFixed(1)} GiB`;
}

function age(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1_000).toFixed(1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

function queueRow(queue: DestinationQueue): string[] {
  return [queue.name, shortId(queue.serverId), `depth ${queue.depth}`, queue.oldestAgeMs === undefined ? '' : `oldest ${age(queue.oldestAgeMs)}`, `unconfirmed ${queue.unconfirmed}`];
}

function statsLines(stats: LinkStats): string[] {
  return table([
    ['frames', `sent ${stats.framesSent}`, `received ${stats.framesReceived}`],
    ['events', `sent ${stats.eventsSent}`, `received ${stats.eventsReceived}`, `duplicate ${stats.eventsDuplicate}, refused ${stats.eventsRefused}`],
    ['bytes', `sent ${bytes(stats.bodyBytesSent)}`, `received ${bytes(stats.bodyBytesReceived)}`, '(encrypted bodies)'],
    ['batches', `sent ${stats.batchesSent}`, `unacknowledged ${stats.unackedBatches}`, `send loop ${stats.sendState}, link seq ${stats.sentLinkSeq}, resumed from ${stats.resumedFrom}, ${stats.rewinds} rewind(s)`],
  ]);
}

function linkLines(link: LinkCounters): string[] {
  return [
    `${link.name} (${shortId(link.peerId)}): ${link.status}${link.stats ? '' : ', link down'}`,
    ...(link.stats ? statsLines(link.stats) : []),
    link.queues.length > 0 ? '  queues, by destination routed over this link:' : '  queues: no destination is routed over this link',
    ...table(link.queues.map(queueRow), '    '),
  ];
}

export function linksText(report: LinksReport): string[] {
  const lines = report.links.length > 0 ? report.links.flatMap(linkLines) : ['no trusts'];
  if (report.unrouted.length > 0) lines.push('waiting for a path:', ...table(report.unrouted.map(queueRow)));
  if (report.replicas.length > 0) {
    const names = new Map(report.links.map((link) => [link.peerId, link.name]));
    lines.push('replicas of this server (from Redis):');
    for (const replica of report.replicas) {
      const held = replica.peerIds.map((peer) => names.get(peer) ?? shortId(peer)).join(', ') || 'no link';
      lines.push(`  ${replica.replicaId} (pid ${replica.pid}, since ${replica.startedAt}): holds ${held}`);
    }
  }
  return lines;
}
