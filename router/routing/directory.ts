import { PUBLIC_KEY_BYTES, signServerRecord, verifyServerRecord, type Identity } from '../../crypto/index.js';
import { ServerRecord, ServerRecordBody } from '../../proto/gen/trellis/v1/link.js';
import type { AuditEntry, EventStore } from '../../store/index.js';
import { printable } from '../audit.js';
import type { ServerKind } from './route-choice.js';

/**
 * The server directory (architecture.md, "Server directory"): every server announces a
 * record of itself signed by its identity key, and neighbours pass records on unchanged.
 * A key is pinned at first sight (or ahead of it, in the config); a record with another
 * key for a known id is refused and journalled. The directory is what lets a node check
 * the signature of an event whose origin it holds no trust with: a transit relays, but
 * cannot forge.
 */
export const DIRECTORY_RECORDS_MAX = 100_000;
export const RECORDS_PER_FRAME_MAX = 10_000;
const ID_CHARS_MAX = 64;
const KINDS: ReadonlySet<string> = new Set<ServerKind>(['CTS', 'ETS', 'RTS', 'TTS']);

export interface ServerEntry {
  id: string;
  kind: ServerKind;
  name: string;
  identityKey: Buffer;
  /** The server's upstream id; empty for an RTS. */
  upstream: string;
  issuedAtMs: number;
  /** The record as signed, passed on as it came. */
  signed: ServerRecord;
}

export interface OwnRecord {
  id: string;
  kind: ServerKind;
  name: string;
  upstream: string;
}

export interface DirectoryDeps {
  store: EventStore;
  /** The key pinned for a server (config, trust, or an earlier first sight), if any. */
  pinnedKey(serverId: string): Promise<Uint8Array | undefined>;
  pinKey(serverId: string, key: Uint8Array): Promise<void>;
  audit(entry: AuditEntry, coalesceKey?: string): Promise<void>;
}

class RecordRefused extends Error {
  constructor(
    readonly code: 'malformed-record' | 'bad-signature' | 'key-mismatch',
    message: string,
  ) {
    super(message);
  }
}

/** Decodes and checks a record's shape and signature (under the key it carries); throws RecordRefused. */
function readRecord(signed: ServerRecord): ServerEntry {
  let body: ServerRecordBody;
  try {
    body = ServerRecordBody.decode(signed.record);
  } catch {
    throw new RecordRefused('malformed-record', 'a server record that does not decode');
  }
  const textOk = (value: string, max = ID_CHARS_MAX) => value.length <= max && printable(value, max) === value;
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
    signed: { record: Buffer.from(signed.record), signature: Buffer.from(signed.signature) },
  };
}

export class ServerDirectory {
  private readonly entries = new Map<string, ServerEntry>();
  readonly self: ServerEntry;

  constructor(
    identity: Identity,
    own: OwnRecord,
    issuedAtMs: number,
    private readonly deps: DirectoryDeps,
  ) {
    const record = Buffer.from(ServerRecordBody.encode({ serverId: own.id, kind: own.kind, name: own.name, identityKey: Buffer.from(identity.publicKey), upstream: own.upstream, issuedAtMs }).finish());
    this.self = readRecord({ record, signature: signServerRecord(identity, record) });
    this.entries.set(own.id, this.self);
  }

  /** Reads back the records kept by an earlier run; each is checked again as if it had just arrived. */
  async load(): Promise<void> {
    await this.offer('', (await this.deps.store.serverRecords()).map((bytes) => ServerRecord.decode(bytes)));
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
   * Takes the records a peer passed on; refuses (and journals) what does not check out.
   * Returns the entries that are new or newer: their servers' events can now be checked.
   */
  async offer(peerId: string, records: readonly ServerRecord[]): Promise<ServerEntry[]> {
    const changed: ServerEntry[] = [];
    for (const signed of records.slice(0, RECORDS_PER_FRAME_MAX)) {
      try {
        const entry = await this.accept(signed);
        if (entry) changed.push(entry);
      } catch (error) {
        if (!(error instanceof RecordRefused)) throw error;
        await this.deps.audit({ kind: 'record-refused', code: error.code, detail: error.message, ...(peerId ? { peer: peerId } : {}) }, peerId || 'directory');
      }
    }
    return changed;
  }

  private async accept(signed: ServerRecord): Promise<ServerEntry | undefined> {
    const entry = readRecord(signed);
    const known = this.entries.get(entry.id);
    if (known && known.issuedAtMs >= entry.issuedAtMs && known.identityKey.equals(entry.identityKey)) return undefined;
    const pinned = entry.id === this.self.id ? this.self.identityKey : await this.deps.pinnedKey(entry.id);
    if (pinned && !Buffer.from(pinned).equals(entry.identityKey)) {
      throw new RecordRefused('key-mismatch', `server ${entry.id}: record carries another key than the one pinned for it`);
    }
    if (entry.id === this.self.id) return undefined;
    if (!known && this.entries.size >= DIRECTORY_RECORDS_MAX) return undefined;
    if (!pinned) {
      await this.deps.pinKey(entry.id, entry.identityKey);
      // Two links may bring a first record at once: the key that won the pin is the one that counts.
      const won = await this.deps.pinnedKey(entry.id);
      if (!won || !Buffer.from(won).equals(entry.identityKey)) throw new RecordRefused('key-mismatch', `server ${entry.id}: record carries another key than the one pinned for it`);
    }
    this.entries.set(entry.id, entry);
    await this.deps.store.saveServerRecord(entry.id, ServerRecord.encode(entry.signed).finish(), entry.issuedAtMs);
    return entry;
  }
}
