// The agent's unix-socket protocol: one JSON line each way. Imported by the archive client,
// which PostgreSQL starts for every WAL segment the shell entry point cannot answer, so this
// file must import nothing.

export type SocketRequest =
  | { op: 'push'; path: string; spoolDir?: string }
  | { op: 'get'; name: string; dest: string; spoolDir?: string };

export type SocketResponse =
  // warning: for PostgreSQL's log (a WAL file dropped by archive-push-queue-max)
  | { ok: true; note?: string; warning?: string }
  | { ok: false; missing?: boolean; error: string };

export const DEFAULT_SOCKET = '/run/pgrepo/agent.sock';
