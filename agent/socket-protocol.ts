// The agent's unix-socket protocol: one JSON line each way. Imported by the archive client,
// which PostgreSQL starts for every WAL segment, so this file must import nothing.

export type SocketRequest =
  | { op: 'push'; path: string }
  | { op: 'get'; name: string; dest: string };

export type SocketResponse =
  | { ok: true; note?: string }
  | { ok: false; missing?: boolean; error: string };

export const DEFAULT_SOCKET = '/run/pgrepo/agent.sock';
