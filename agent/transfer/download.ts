import { Readable } from 'node:stream';

/** The data parts of a server stream as a byte stream, for the decompress pipeline. */
export function dataStream<M extends { data?: Buffer }>(messages: AsyncIterable<M>, first?: M): Readable {
  return Readable.from((async function* () {
    if (first?.data?.length) yield first.data;
    for await (const m of messages) if (m.data?.length) yield m.data;
  })(), { objectMode: false });
}
