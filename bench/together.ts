/**
 * Child processes that measure a machine bound at the same moment, each in a process of
 * its own as each server is (bench/disk.ts, bench/bounds.ts). Each child prepares its
 * task, says it is ready, and starts only when every child is: what they measure then
 * overlaps for its whole length. Past the time limit the children are killed.
 */
import { fork, type ChildProcess, type Serializable } from 'node:child_process';

type ChildMessage<Answer> = { ready: true } | { answer: Answer } | { error: string };

/** Forks `script` once per task; resolves with each child's answer, in task order. */
export async function runTogether<Task extends Serializable, Answer>(script: URL, tasks: readonly Task[], limitMs: number): Promise<Answer[]> {
  const name = script.pathname.split('/').pop();
  const children: ChildProcess[] = [];
  const limit = setTimeout(() => children.forEach((child) => child.kill('SIGKILL')), limitMs);
  let ready = 0;
  try {
    return await Promise.all(tasks.map((task) => {
      const child = fork(script, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      return new Promise<Answer>((resolve, reject) => {
        child.on('message', (message: ChildMessage<Answer>) => {
          if ('ready' in message) {
            ready += 1;
            if (ready === tasks.length) children.forEach((each) => each.send({ go: true }));
          } else if ('answer' in message) resolve(message.answer);
          else reject(new Error(`${name}: ${message.error}`));
        });
        child.once('exit', (code) => reject(new Error(`${name} exited (${code ?? 'killed'}) before answering`)));
        child.send(task);
      });
    }));
  } finally {
    clearTimeout(limit);
    children.forEach((child) => child.kill());
  }
}

/**
 * The child's side: `prepare` gets the task and returns the measurement, which runs when
 * every child is ready; its answer goes to the parent. Exits when done, and when the
 * parent goes away.
 */
export function serveTogether<Task, Answer>(prepare: (task: Task) => Promise<() => Promise<Answer>>): void {
  const send = (message: ChildMessage<Answer>, exitCode?: number) => process.send?.(message, () => (exitCode === undefined ? undefined : process.exit(exitCode)));
  process.once('disconnect', () => process.exit(0));
  process.once('message', (task: Task) => {
    prepare(task).then(
      (measure) => {
        process.once('message', () => measure().then((answer) => send({ answer }, 0), (error: Error) => send({ error: error.message }, 1)));
        send({ ready: true });
      },
      (error: Error) => send({ error: error.message }, 1),
    );
  });
}
