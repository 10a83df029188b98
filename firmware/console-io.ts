/**
 * The two operations a console menu needs from the terminal session, so that each menu can live in its
 * own module.
 */

export interface ConsoleIo {
  /**
   * Shows `question` and resolves to the trimmed line typed, '' after Ctrl-C, or undefined when the
   * input ended. With `hidden`, nothing typed is echoed.
   */
  ask(question: string, hidden?: boolean): Promise<string | undefined>;
  print(text: string): void;
}

/** Formats a caught error for the technician: the message, then the error code when there is one. */
export function describeError(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' && code.startsWith('ERR_') ? `${message} (${code})` : message;
}
