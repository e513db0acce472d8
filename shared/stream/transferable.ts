/**
 * The buffers that can be moved to another thread instead of copied: any whose memory is not
 * Node's shared pool of small buffers (moving that would detach it under every other small Buffer).
 */
export function transferable(b: Uint8Array): ArrayBuffer[] {
  return b.buffer instanceof ArrayBuffer && b.buffer.byteLength > Buffer.poolSize ? [b.buffer] : [];
}
