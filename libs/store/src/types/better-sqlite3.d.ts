// A minimal declaration of the parts of better-sqlite3 (v12) this package uses, because
// @types/better-sqlite3 is not installed in this workspace. Replace with the real types when it is.
declare module "better-sqlite3" {
  namespace Database {
    interface RunResult {
      changes: number;
      lastInsertRowid: number | bigint;
    }

    interface Statement<Params extends unknown[] = unknown[], Row = unknown> {
      run(...params: Params): RunResult;
      get(...params: Params): Row | undefined;
      all(...params: Params): Row[];
    }

    interface Transaction<F extends (...args: never[]) => unknown> {
      (...args: Parameters<F>): ReturnType<F>;
      deferred(...args: Parameters<F>): ReturnType<F>;
      immediate(...args: Parameters<F>): ReturnType<F>;
      exclusive(...args: Parameters<F>): ReturnType<F>;
    }

    interface Options {
      readonly?: boolean;
      fileMustExist?: boolean;
      /** Milliseconds to wait on a locked database before SQLITE_BUSY. Default 5000. */
      timeout?: number;
    }

    interface Database {
      readonly open: boolean;
      readonly inTransaction: boolean;
      prepare<Params extends unknown[] = unknown[], Row = unknown>(sql: string): Statement<Params, Row>;
      exec(sql: string): this;
      pragma(source: string, options?: { simple?: boolean }): unknown;
      transaction<F extends (...args: never[]) => unknown>(fn: F): Transaction<F>;
      close(): this;
    }

    interface DatabaseConstructor {
      new (filename: string, options?: Options): Database;
      (filename: string, options?: Options): Database;
      SqliteError: new (message: string, code: string) => Error & { code: string };
    }
  }

  const Database: Database.DatabaseConstructor;
  export = Database;
}
