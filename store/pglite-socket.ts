import { Duplex } from 'node:stream';
import type { PGlite } from '@electric-sql/pglite';

/**
 * Frontend messages the backend answers only up to a later Sync, Flush or Query (Parse,
 * Bind, Describe, Execute, Close): held, and sent with it.
 */
const HELD_UNTIL_SYNC = new Set(['P', 'B', 'D', 'E', 'C'].map((letter) => letter.charCodeAt(0)));
const TERMINATE = 'X'.charCodeAt(0);

/**
 * The answer to the client's StartupMessage: AuthenticationOk, then ReadyForQuery (idle).
 * PGlite runs one session already open and does not take a startup packet itself.
 */
const STARTED = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0, 0x5a, 0, 0, 0, 5, 0x49]);

/**
 * A socket to PGlite for node-postgres: what the client writes goes into the engine as
 * PostgreSQL protocol bytes, and the engine's answers come back as what it reads, so
 * node-postgres talks to the embedded engine exactly as to a server: its own serializer
 * and parser (PGlite's in-process adapter measures each string's UTF-8 length in a
 * JavaScript loop, a large part of a busy node's CPU), its own error recovery, prepared
 * statements.
 *
 * A statement's messages reach the engine together at its Sync: one entry into the engine
 * per statement, and an Execute that fails is never answered apart from its Sync. No sync
 * to the filesystem after each call: on NodeFS it does nothing (files are written and
 * fsynced as PostgreSQL asks) but take a lock and allocate.
 */
export class PgliteSocket extends Duplex {
  private held: Buffer[] = [];
  private started = false;
  private turn: Promise<void> = Promise.resolve();

  constructor(private readonly db: PGlite) {
    super();
  }

  // What node-postgres calls on a net.Socket before it speaks.
  connect(): this {
    process.nextTick(() => this.emit('connect'));
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (!this.started) {
      // The startup packet has no type byte; the client sends nothing else before its answer.
      this.started = true;
      this.turn = this.turn.then(() => this.newSession()).then(() => void this.push(STARTED), (error: Error) => void this.destroy(error));
      done();
      return;
    }
    const type = chunk[0]!;
    if (HELD_UNTIL_SYNC.has(type)) {
      this.held.push(chunk);
      done();
      return;
    }
    if (type === TERMINATE) {
      done();
      this.push(null);
      return;
    }
    this.held.push(chunk);
    const message = this.held.length > 1 ? Buffer.concat(this.held) : chunk;
    this.held = [];
    // In order, one at a time; the client may write the next statement before this one is answered.
    this.turn = this.turn.then(async () => {
      try {
        const answer = await this.answerTo(message);
        if (answer.length > 0) this.push(answer);
      } catch (error) {
        this.destroy(error as Error);
      }
    });
    done();
  }

  /**
   * The engine's answer as raw bytes, copied out of its memory as it writes them. Not
   * execProtocolRaw: that also parses every answer into JavaScript objects and keeps them
   * in a list only execProtocol clears: every answer since the engine started stayed on
   * the heap (a node's memory grew with each event it stored, without bound), and each
   * major collection had more of it to mark.
   */
  private async answerTo(message: Buffer): Promise<Buffer> {
    const chunks: Buffer[] = [];
    await this.db.execProtocolRawStream(message, { syncToFs: false, onRawData: (data) => void chunks.push(Buffer.from(data)) });
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  }

  /**
   * PGlite's one session outlives the client before this one (the pool drops a client
   * after an error): what that client left behind goes, as a new server session would
   * start clean. Its prepared statements (this client prepares under the same names) and
   * a transaction it left open.
   */
  private async newSession(): Promise<void> {
    if (this.db.isInTransaction()) await this.db.exec('rollback');
    await this.db.exec('deallocate all');
  }

  override _final(done: (error?: Error | null) => void): void {
    this.push(null);
    done();
  }
}
