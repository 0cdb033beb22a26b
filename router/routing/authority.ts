import type { TrustConfig } from '../config.js';
import type { ServerKind } from './route-choice.js';

/**
 * Who may vouch for what (architecture.md, "Server directory" and "Reachability"). A trust
 * says who may talk to us, not what they may claim about others: every claim about a third
 * server needs someone with the authority to vouch for it.
 *
 * - A server's key, kind and upstream: our own trust with it (its key pinned at the
 *   handshake or in the config), else an attestation by a server we already believe that
 *   registered it (its upstream, an ETS or RTS) or, for an RTS, by an ETS whose upstream it
 *   is. A CTS vouches for itself only. Pure functions over what the directory believes.
 * - A path: each server on it must be believed, each step must join a server to its
 *   attested upstream (or the other way), and no CTS is a transit: a CTS announces itself
 *   only, and never stands inside a path.
 */
export interface Vouchable {
  id: string;
  kind: ServerKind;
  /** Its upstream's id; empty for an RTS. */
  upstream: string;
}

export type Authority = 'registered' | 'upstream';

/** The kinds a server of each kind registers below it. */
const REGISTERS: Record<ServerKind, ReadonlySet<ServerKind>> = {
  RTS: new Set<ServerKind>(['ETS', 'CTS', 'TTS']),
  ETS: new Set<ServerKind>(['CTS', 'TTS']),
  CTS: new Set<ServerKind>(),
  TTS: new Set<ServerKind>(),
};

/** Whether `attester` may vouch for `subject`'s record, and why: it registered it, or it is an ETS vouching for its RTS. */
export function authorityOver(attester: Vouchable, subject: Vouchable): Authority | undefined {
  if (subject.upstream === attester.id && REGISTERS[attester.kind].has(subject.kind)) return 'registered';
  if (attester.kind === 'ETS' && subject.kind === 'RTS' && attester.upstream === subject.id) return 'upstream';
  return undefined;
}

/**
 * Why the record a server of our own trust sends does not fit that trust, if it does not:
 * the administrator's trust fixes its kind, and a server below us must name us its upstream.
 */
export function trustMismatch(trust: Pick<TrustConfig, 'kind' | 'role'>, selfId: string, record: Vouchable): string | undefined {
  if (record.kind !== trust.kind) return `the record says ${record.kind}, our trust says ${trust.kind}`;
  if (trust.role === 'downstream' && record.upstream !== selfId) return 'a server below us names another upstream';
  return undefined;
}

export type PathRefusalCode = 'not-transit' | 'no-authority' | 'unknown-server';
export type PathVerdict = { ok: true } | { ok: false; code: PathRefusalCode; why: string };

const OK: PathVerdict = { ok: true };
const refusal = (code: PathRefusalCode, why: string): PathVerdict => ({ ok: false, code, why });

/**
 * Whether a neighbour of `neighbourKind` (our trust's kind for it) may announce `path`
 * (itself first, the reachable server last). `unknown-server` is not a refusal for good:
 * a record that vouches for the server may still arrive, and the path is judged again then.
 */
export function judgePath(neighbourKind: ServerKind, path: readonly string[], believed: (serverId: string) => Vouchable | undefined): PathVerdict {
  if (path.length === 1) return OK;
  if (neighbourKind === 'CTS') return refusal('not-transit', 'a CTS announces only itself');
  let previous = believed(path[0]!);
  if (!previous) return refusal('unknown-server', `no record vouches for the neighbour ${path[0]}`);
  for (let index = 1; index < path.length; index++) {
    const server = believed(path[index]!);
    if (!server) return refusal('unknown-server', `no record vouches for ${path[index]}`);
    if (index < path.length - 1 && server.kind === 'CTS') return refusal('not-transit', `the path passes through the CTS ${server.id}`);
    if (server.upstream !== previous.id && previous.upstream !== server.id) {
      return refusal('no-authority', `no attested record puts ${server.id} next to ${previous.id}`);
    }
    previous = server;
  }
  return OK;
}
