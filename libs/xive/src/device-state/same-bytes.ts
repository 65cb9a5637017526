/** Two views hold the same bytes (one memcmp: how pre-copy reads compare arrays with their copy). */
export function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return (
    a.byteLength === b.byteLength &&
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}
