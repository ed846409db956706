/**
 * Typed user-facing errors. Each names the file, field or line at fault, what was expected and what was
 * found. The CLI prints a `HeadsError` as one line and exits with code 2; any other error is a bug and
 * keeps its stack.
 */
export class HeadsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A config or experiment spec value is wrong: `file: dot.path: expected ..., got ...`. */
export class ConfigError extends HeadsError {
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0]! : `${problems.length} problems:\n  ${problems.join('\n  ')}`);
  }
}

/** A corpus, vocabulary or other data file is malformed: names the file and line. */
export class DataError extends HeadsError {}

/** A checkpoint is missing, corrupt or does not fit the model. */
export class CheckpointError extends HeadsError {}

/** A head mask does not fit the model or is malformed. */
export class MaskError extends HeadsError {}

/**
 * The file system refused a write or a read the toolkit needs (full disk, no permission, read-only):
 * names the file and the reason. Files written before are intact (every write is atomic).
 */
export class FileSystemError extends HeadsError {
  constructor(
    readonly path: string,
    readonly code: string,
    action: string,
  ) {
    super(`${path}: cannot ${action}: ${describeCode(code)}`);
  }
}

const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on device (ENOSPC)',
  EDQUOT: 'disk quota exceeded (EDQUOT)',
  EACCES: 'permission denied (EACCES)',
  EPERM: 'operation not permitted (EPERM)',
  EROFS: 'read-only file system (EROFS)',
  EIO: 'input/output error (EIO)',
  EISDIR: 'it is a directory (EISDIR)',
  ENOTDIR: 'a part of the path is not a directory (ENOTDIR)',
  ENAMETOOLONG: 'file name too long (ENAMETOOLONG)',
  EMFILE: 'too many open files (EMFILE)',
};

function describeCode(code: string): string {
  return REASONS[code] ?? code;
}

/** The wasm heap ran out during a step. */
export class OutOfMemoryError extends HeadsError {}

export function isHeadsError(e: unknown): e is HeadsError {
  return e instanceof HeadsError;
}
