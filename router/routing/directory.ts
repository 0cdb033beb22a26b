import { setImmediate as nextTurn } from 'node:timers/promises';
import { PUBLIC_KEY_BYTES, signAttestation, signServerRecord, verifyAttestation, verifyServerRecord, type Identity } from '../../crypto/index.js';
import { AttestationBody, ServerRecord, ServerRecordBody, type Attestation } from '../../proto/gen/trellis/v1/link.js';
import type { AuditEntry, EventStore } from '../../store/index.js';
import { printable } from '../audit.js';
import type { TrustConfig } from '../config.js';
import { authorityOver, trustMismatch, type Vouchable } from './authority.js';
import type { ServerKind } from './route-choice.js';

/**
 * The server directory (architecture.md, "Server directory"): every server announces a
 * record of itself signed by its identity key, and neighbours pass records on unchanged.
 * A record is believed only when someone with the authority vouches for it (authority.ts):
 * our own trust with the server, or an attestation by a server we already believe that
 * registered it, along a chain that ends at a server we trust. Nothing here pins a key: a
 * record learnt from a neighbour never blocks a trust an administrator adds later, and a
 * trust's key, once pinned at its handshake, replaces whatever an attestation said.
 *
 * The directory is what lets a node check the signature of an event whose origin it holds
 * no trust with: a transit relays, but cannot forge, and a neighbour cannot invent a server.
 */
export const DIRECTORY_RECORDS_MAX = 100_000;
export const RECORDS_PER_FRAME_MAX = 10_000;
/** Servers one attester may vouch for in our directory: a hostile ETS cannot fill it with servers it invents. */
export const RECORDS_PER_ATTESTER_MAX = 20_000;
/** Records kept while the server that attests them is not believed yet (its record may come on another link). */
export const PENDING_RECORDS_MAX = 10_000;
export const PENDING_RECORDS_PER_PEER_MAX = 2_000;
/** Attestations read of one record, and the longest chain of them from a server we trust. */
export const ATTESTATIONS_PER_RECORD_MAX = 4;
export const ATTESTATION_CHAIN_MAX = 8;
/** Records checked (two signatures each) between turns of the event loop: a frame of thousands never starves the links' timers. */
export const RECORDS_PER_TURN = 128;
const ID_CHARS_MAX = 64;
const KINDS: ReadonlySet<string> = new Set<ServerKind>(['CTS', 'ETS', 'RTS', 'TTS']);
/** Who vouched for an entry, when it is not another server: ourselves, or our own trust. */
export const VOUCHED_BY_SELF = 'self';
export const VOUCHED_BY_TRUST = 'trust';

interface RecordFields extends Vouchable {
  name: string;
  identityKey: Buffer;
  issuedAtMs: number;
}

export interface ServerEntry extends RecordFields {
  /** The record as passed on: as signed, with the attestation that vouched for it (and ours, where we may attest). */
  signed: ServerRecord;
  /** VOUCHED_BY_SELF, VOUCHED_BY_TRUST, or the id of the server whose attestation we believed. */
  vouchedBy: string;
  /** Attestations between the entry and a server we trust (0: ourselves or our own trust). */
  depth: number;
}

export interface OwnRecord {
  id: string;
  kind: ServerKind;
  name: string;
  upstream: string;
}

export interface DirectoryDeps {
  store: EventStore;
  /** The key our own authority holds for a server: a trust's or pinned_servers' key from the config, or one pinned at a trust's handshake. */
  trustedKey(serverId: string): Uint8Array | undefined;
  /** Our trust with the server, if we hold one: it fixes the server's kind and, below us, its upstream. */
  trustOf(serverId: string): TrustConfig | undefined;
  audit(entry: AuditEntry, coalesceKey?: string): Promise<void>;
  now(): number;
}

export type RecordRefusalCode = 'malformed-record' | 'bad-signature' | 'key-mismatch' | 'key-conflict' | 'kind-mismatch' | 'no-authority' | 'directory-full';

export class RecordRefused extends Error {
  constructor(
    readonly code: RecordRefusalCode,
    message: string,
  ) {
    super(message);
    this.name = 'RecordRefused';
  }
}

/** A record as read off the wire, signature checked, not believed yet. */
interface Candidate extends RecordFields {
  record: Buffer;
  signature: Buffer;
  attestations: Attestation[];
}

type Vouch = { by: string; depth: number; attestation?: Attestation };

const textOk = (value: string) => value.length <= ID_CHARS_MAX && printable(value, ID_CHARS_MAX) === value;

/** Decodes and checks a record's shape and its own signature (under the key it carries); throws RecordRefused. */
function readRecord(signed: ServerRecord): Candidate {
  let body: ServerRecordBody;
  try {
    body = ServerRecordBody.decode(signed.record);
  } catch {
    throw new RecordRefused('malformed-record', 'a server record that does not decode');
  }
  if (!body.serverId || !textOk(body.serverId)) throw new RecordRefused('malformed-record', 'a server record without a valid id');
  if (!KINDS.has(body.kind)) throw new RecordRefused('malformed-record', `server ${body.serverId}: kind ${printable(body.kind, 8)} is not CTS, ETS, RTS or TTS`);
  if (!textOk(body.name) || !textOk(body.upstream)) throw new RecordRefused('malformed-record', `server ${body.serverId}: name or upstream too long or not printable`);
  if (body.identityKey.length !== PUBLIC_KEY_BYTES) throw new RecordRefused('malformed-record', `server ${body.serverId}: identity key is not ${PUBLIC_KEY_BYTES} bytes`);
  if (!Number.isSafeInteger(body.issuedAtMs)) throw new RecordRefused('malformed-record', `server ${body.serverId}: issued_at_ms out of range`);
  if (!verifyServerRecord(body.identityKey, signed.record, signed.signature)) throw new RecordRefused('bad-signature', `server ${body.serverId}: record signature does not verify`);
  return {
    id: body.serverId,
    kind: body.kind as ServerKind,
    name: body.name,
    identityKey: Buffer.from(body.identityKey),
    upstream: body.upstream,
    issuedAtMs: body.issuedAtMs,
    record: Buffer.from(signed.record),
    signature: Buffer.from(signed.signature),
    attestations: (signed.attestations ?? []).slice(0, ATTESTATIONS_PER_RECORD_MAX),
  };
}

function readAttestation(attestation: Attestation): AttestationBody | undefined {
  try {
    return AttestationBody.decode(attestation.statement);
  } catch {
    return undefined;
  }
}

/** Whether an attestation says of a server what its own record says. */
function attests(body: AttestationBody, candidate: Candidate): boolean {
  return body.serverId === candidate.id && body.kind === candidate.kind && body.upstream === candidate.upstream && Buffer.from(body.identityKey).equals(candidate.identityKey);
}

export class ServerDirectory {
  private readonly entries = new Map<string, ServerEntry>();
  private forgottenCount = 0;
  /** Records whose attester is not believed yet, by server id; re-judged when it is. */
  private readonly pending = new Map<string, { candidate: Candidate; peer: string; waitingOn: string[] }>();
  private readonly pendingByAttester = new Map<string, Set<string>>();
  private readonly pendingPerPeer = new Map<string, number>();
  /** How many entries each attester vouched for (RECORDS_PER_ATTESTER_MAX). */
  private readonly vouchedCount = new Map<string, number>();
  readonly self: ServerEntry;

  constructor(
    private readonly identity: Identity,
    own: OwnRecord,
    issuedAtMs: number,
    private readonly deps: DirectoryDeps,
  ) {
    const record = Buffer.from(ServerRecordBody.encode({ serverId: own.id, kind: own.kind, name: own.name, identityKey: Buffer.from(identity.publicKey), upstream: own.upstream, issuedAtMs }).finish());
    const candidate = readRecord({ record, signature: signServerRecord(identity, record), attestations: [] });
    this.self = this.entryOf(candidate, { by: VOUCHED_BY_SELF, depth: 0 });
    this.entries.set(own.id, this.self);
  }

  /** Reads back the records kept by an earlier run; each is judged again as if it had just arrived. */
  async load(): Promise<void> {
    const candidates: Candidate[] = [];
    for (const bytes of await this.deps.store.serverRecords()) {
      try {
        candidates.push(readRecord(ServerRecord.decode(bytes)));
      } catch {
        // A record the store holds but that no longer reads is simply not believed.
      }
    }
    await this.judgeAll(candidates.map((candidate) => ({ candidate, peer: '' })));
  }

  /** Beliefs dropped when everything was judged again, ever: when it moves, paths are judged again too (no `changed` list names them). */
  get forgotten(): number {
    return this.forgottenCount;
  }

  get(serverId: string): ServerEntry | undefined {
    return this.entries.get(serverId);
  }

  list(): ServerEntry[] {
    return [...this.entries.values()];
  }

  records(): ServerRecord[] {
    return this.list().map((entry) => entry.signed);
  }

  /**
   * Takes the records a peer passed on; refuses (and journals) what does not check out or
   * that nobody with the authority vouches for. Returns the entries that are new or
   * changed, those the new ones vouched for included: their servers' events can now be
   * checked, and a transit passes them on.
   */
  async offer(peerId: string, records: readonly ServerRecord[]): Promise<ServerEntry[]> {
    const changed: ServerEntry[] = [];
    for (const [index, signed] of records.slice(0, RECORDS_PER_FRAME_MAX).entries()) {
      if (index > 0 && index % RECORDS_PER_TURN === 0) await nextTurn();
      try {
        changed.push(...(await this.consider(readRecord(signed), peerId)));
      } catch (error) {
        if (!(error instanceof RecordRefused)) throw error;
        await this.refused(error, peerId);
      }
    }
    await this.save(changed);
    return changed;
  }

  /**
   * Our own trust with a server changed (added, removed, its key pinned at a handshake):
   * what the directory believes is judged again from the start, as what it vouched for
   * may stand or fall with it. Returns the entries believed now that were not before, or changed.
   */
  async trustChanged(serverId: string): Promise<ServerEntry[]> {
    const touches = this.entries.has(serverId) || this.pending.has(serverId) || [...this.entries.values()].some((entry) => entry.vouchedBy === serverId);
    return touches ? this.judgeAgain() : [];
  }

  /** Judges everything believed or pending again, from our trusts on. */
  private judgeAgain(): Promise<ServerEntry[]> {
    const all = [...this.entries.values()].filter((entry) => entry !== this.self).map((entry) => ({ candidate: candidateOf(entry), peer: '' }));
    return this.judgeAll([...all, ...this.pending.values()]);
  }

  private async refused(error: RecordRefused, peerId: string): Promise<void> {
    await this.deps.audit({ kind: 'record-refused', code: error.code, detail: error.message, ...(peerId ? { peer: peerId } : {}) }, peerId || 'directory');
  }

  /** Forgets every belief and judges the records again, those our trusts vouch for first: the shortest chain wins a conflict. */
  private async judgeAll(records: Array<{ candidate: Candidate; peer: string }>): Promise<ServerEntry[]> {
    const before = new Map(this.entries);
    this.entries.clear();
    this.entries.set(this.self.id, this.self);
    this.pending.clear();
    this.pendingByAttester.clear();
    this.pendingPerPeer.clear();
    this.vouchedCount.clear();
    const byDepth = (a: { candidate: Candidate }, b: { candidate: Candidate }) => (this.deps.trustedKey(a.candidate.id) ? 0 : 1) - (this.deps.trustedKey(b.candidate.id) ? 0 : 1);
    // One record a server, its newest: judged once, so a rebuild never starts another for the same server.
    const newest = new Map<string, { candidate: Candidate; peer: string }>();
    for (const record of records) if ((newest.get(record.candidate.id)?.candidate.issuedAtMs ?? -1) < record.candidate.issuedAtMs) newest.set(record.candidate.id, record);
    for (const { candidate, peer } of [...newest.values()].sort(byDepth)) {
      try {
        await this.consider(candidate, peer);
      } catch (error) {
        if (!(error instanceof RecordRefused)) throw error;
        await this.refused(error, peer);
      }
    }
    for (const id of before.keys()) if (!this.entries.has(id)) this.forgottenCount += 1;
    const changed = this.list().filter((entry) => {
      const earlier = before.get(entry.id);
      return entry !== this.self && (!earlier || !earlier.identityKey.equals(entry.identityKey) || earlier.vouchedBy !== entry.vouchedBy || earlier.issuedAtMs !== entry.issuedAtMs);
    });
    await this.save(changed);
    return changed;
  }

  /**
   * Believes a record if someone with the authority vouches for it, else keeps it pending
   * on its attester or refuses it. Then re-judges what was pending on it. The caller saves
   * the entries it answers.
   */
  private async consider(candidate: Candidate, peerId: string): Promise<ServerEntry[]> {
    if (candidate.id === this.self.id) {
      if (!candidate.identityKey.equals(this.self.identityKey)) throw new RecordRefused('key-mismatch', `server ${candidate.id}: a record of ours with another key`);
      return [];
    }
    const vouch = this.vouchFor(candidate);
    if (!('by' in vouch)) {
      this.keepPending(candidate, peerId, vouch.waitingOn);
      return [];
    }
    const known = this.entries.get(candidate.id);
    if (known && !known.identityKey.equals(candidate.identityKey)) {
      // Our own trust's key beats an attestation: believe it, and judge again what the old key vouched for.
      if (vouch.depth === 0 && known.depth > 0) {
        this.entries.delete(candidate.id);
        return this.trustChanged(candidate.id).then(async (changed) => [...changed, ...(await this.consider(candidate, peerId))]);
      }
      throw new RecordRefused(known.depth === 0 ? 'key-mismatch' : 'key-conflict', `server ${candidate.id}: record carries another key than the one ${known.depth === 0 ? 'our trust holds' : `${known.vouchedBy} vouched for`}`);
    }
    if (known && known.issuedAtMs >= candidate.issuedAtMs && known.depth <= vouch.depth) return [];
    if (!known && this.entries.size >= DIRECTORY_RECORDS_MAX) throw new RecordRefused('directory-full', `server ${candidate.id}: the directory holds ${DIRECTORY_RECORDS_MAX} servers`);
    const count = this.vouchedCount.get(vouch.by) ?? 0;
    if (!known && vouch.depth > 0 && count >= RECORDS_PER_ATTESTER_MAX) throw new RecordRefused('directory-full', `server ${candidate.id}: ${vouch.by} already vouches for ${RECORDS_PER_ATTESTER_MAX} servers`);
    const entry = this.entryOf(candidate, vouch);
    if (known) this.vouchedCount.set(known.vouchedBy, (this.vouchedCount.get(known.vouchedBy) ?? 1) - 1);
    this.vouchedCount.set(vouch.by, (this.vouchedCount.get(vouch.by) ?? 0) + 1);
    this.entries.set(entry.id, entry);
    this.dropPending(entry.id);
    // A server whose kind or upstream changed may no longer have the authority it vouched with: what it vouched for is judged again.
    const moved = known && (known.kind !== entry.kind || known.upstream !== entry.upstream);
    if (moved && [...this.entries.values()].some((other) => other.vouchedBy === entry.id)) return [entry, ...(await this.judgeAgain())];
    return [entry, ...(await this.releasePending(entry.id))];
  }

  /** How a record is vouched for: our trust, an attestation by a believed server with the authority, or the attesters it waits on. */
  private vouchFor(candidate: Candidate): Vouch | { waitingOn: string[] } {
    const trusted = this.deps.trustedKey(candidate.id);
    if (trusted) {
      if (!Buffer.from(trusted).equals(candidate.identityKey)) throw new RecordRefused('key-mismatch', `server ${candidate.id}: record carries another key than the one our trust holds`);
      const trust = this.deps.trustOf(candidate.id);
      const mismatch = trust && trustMismatch(trust, this.self.id, candidate);
      if (mismatch) throw new RecordRefused('kind-mismatch', `server ${candidate.id}: ${mismatch}`);
      return { by: VOUCHED_BY_TRUST, depth: 0 };
    }
    let best: Vouch | undefined;
    const waitingOn: string[] = [];
    for (const attestation of candidate.attestations) {
      const body = readAttestation(attestation);
      // Our own attestations count only through the trust they were made for (above).
      if (!body || body.attester === this.self.id || !attests(body, candidate)) continue;
      const attester = this.entries.get(body.attester);
      if (!attester) {
        if (textOk(body.attester) && body.attester) waitingOn.push(body.attester);
        continue;
      }
      if (attester.depth + 1 > ATTESTATION_CHAIN_MAX || !authorityOver(attester, candidate)) continue;
      if (!verifyAttestation(attester.identityKey, attestation.statement, attestation.signature)) continue;
      if (!best || attester.depth + 1 < best.depth) best = { by: attester.id, depth: attester.depth + 1, attestation };
    }
    if (best) return best;
    if (waitingOn.length > 0) return { waitingOn };
    throw new RecordRefused('no-authority', `server ${candidate.id}: no attestation by a server with the authority to vouch for it (its upstream)`);
  }

  private entryOf(candidate: Candidate, vouch: Vouch): ServerEntry {
    const { record, signature, attestations: _, ...fields } = candidate;
    const attestations = vouch.attestation ? [vouch.attestation] : [];
    // A server we registered (or our RTS, for an ETS) travels on with our word for it.
    if (vouch.by === VOUCHED_BY_TRUST && authorityOver(this.self, candidate)) attestations.unshift(this.attest(candidate));
    return { ...fields, signed: { record, signature, attestations }, vouchedBy: vouch.by, depth: vouch.depth };
  }

  private attest(candidate: Candidate): Attestation {
    const statement = Buffer.from(
      AttestationBody.encode({ attester: this.self.id, serverId: candidate.id, identityKey: candidate.identityKey, kind: candidate.kind, upstream: candidate.upstream, issuedAtMs: this.deps.now() }).finish(),
    );
    return { statement, signature: signAttestation(this.identity, statement) };
  }

  private keepPending(candidate: Candidate, peerId: string, waitingOn: string[]): void {
    const replacing = this.pending.get(candidate.id);
    const fromPeer = this.pendingPerPeer.get(peerId) ?? 0;
    if (!replacing && (this.pending.size >= PENDING_RECORDS_MAX || fromPeer >= PENDING_RECORDS_PER_PEER_MAX)) {
      throw new RecordRefused('no-authority', `server ${candidate.id}: its attester is not known, and ${PENDING_RECORDS_MAX} records (${PENDING_RECORDS_PER_PEER_MAX} of one neighbour) already wait for theirs`);
    }
    this.dropPending(candidate.id);
    this.pending.set(candidate.id, { candidate, peer: peerId, waitingOn });
    this.pendingPerPeer.set(peerId, (this.pendingPerPeer.get(peerId) ?? 0) + 1);
    for (const attester of waitingOn) {
      const waiting = this.pendingByAttester.get(attester) ?? new Set<string>();
      waiting.add(candidate.id);
      this.pendingByAttester.set(attester, waiting);
    }
  }

  private dropPending(serverId: string): void {
    const held = this.pending.get(serverId);
    if (!held) return;
    this.pending.delete(serverId);
    const left = (this.pendingPerPeer.get(held.peer) ?? 1) - 1;
    if (left > 0) this.pendingPerPeer.set(held.peer, left);
    else this.pendingPerPeer.delete(held.peer);
    for (const attester of held.waitingOn) {
      const waiting = this.pendingByAttester.get(attester);
      waiting?.delete(serverId);
      if (waiting?.size === 0) this.pendingByAttester.delete(attester);
    }
  }

  /** The records that waited on a server now believed are judged again. */
  private async releasePending(attesterId: string): Promise<ServerEntry[]> {
    const released: ServerEntry[] = [];
    for (const serverId of [...(this.pendingByAttester.get(attesterId) ?? [])]) {
      const held = this.pending.get(serverId);
      if (!held) continue;
      this.dropPending(serverId);
      try {
        released.push(...(await this.consider(held.candidate, held.peer)));
      } catch (error) {
        if (!(error instanceof RecordRefused)) throw error;
        await this.refused(error, held.peer);
      }
    }
    return released;
  }

  private async save(entries: readonly ServerEntry[]): Promise<void> {
    await this.deps.store.saveServerRecords(entries.map((entry) => ({ serverId: entry.id, record: ServerRecord.encode(entry.signed).finish(), issuedAtMs: entry.issuedAtMs })));
  }
}

function candidateOf(entry: ServerEntry): Candidate {
  const { signed, vouchedBy: _, depth: __, ...fields } = entry;
  return { ...fields, record: Buffer.from(signed.record), signature: Buffer.from(signed.signature), attestations: signed.attestations };
}
