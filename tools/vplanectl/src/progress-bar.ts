/**
 * A one-line progress bar for an operation on a terminal's stderr ("[#####.....] 50% step"),
 * redrawn in place; on a non-terminal each change is a new line, so logs stay readable.
 */
export class ProgressBar {
  private last = "";

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly width = 30,
  ) {}

  update(percent: number, label: string): void {
    const filled = Math.round((Math.max(0, Math.min(100, percent)) / 100) * this.width);
    const text = `[${"#".repeat(filled)}${".".repeat(this.width - filled)}] ${String(percent).padStart(3)}% ${label}`;
    if (text === this.last) return;
    this.last = text;
    if (this.stream.isTTY) this.stream.write(`\r\x1b[2K${text}`);
    else this.stream.write(`${text}\n`);
  }

  finish(): void {
    if (this.stream.isTTY && this.last) this.stream.write("\n");
  }
}
