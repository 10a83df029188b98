/**
 * Parsing of YAML documents checked against a JSON Schema, with errors that name the key, the expected
 * form, the value received and the line and column in the source.
 */

import { Ajv, type ErrorObject } from 'ajv';
import { isMap, isScalar, LineCounter, parseDocument, type Document, type Node } from 'yaml';

import { CdrError, type ErrorCode } from './errors.js';

/** Error codes used for the three kinds of failure of one document type. */
export interface YamlErrorCodes {
  parse: ErrorCode;
  invalid: ErrorCode;
  unknownKey: ErrorCode;
}

const ajv = new Ajv({ allErrors: true, strict: true });

/**
 * Parses `text` as YAML and checks it against `schema`.
 *
 * @param sourceName - file name shown in errors, for example `/etc/imp-cdr/cdr.yaml`
 * @returns the parsed value, which matches the schema
 * @throws CdrError with `codes.parse` for invalid YAML, `codes.unknownKey` for a key the schema does not
 *   define, and `codes.invalid` for any other mismatch. `details` has `key`, `line` and `column`.
 */
export function parseYamlWithSchema(
  text: string,
  sourceName: string,
  schema: Record<string, unknown>,
  codes: YamlErrorCodes,
): unknown {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });

  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    const position = lineCounter.linePos(first.pos[0]);
    if (first.code === 'DUPLICATE_KEY') {
      const key = duplicateKeyPath(text, first.pos[0]);
      throw new CdrError(codes.parse, `${sourceName}:${position.line}:${position.col}: key "${key}" appears twice; keep one`, {
        details: { key, line: position.line, column: position.col },
        cause: first,
      });
    }
    throw new CdrError(codes.parse, `${sourceName}:${position.line}:${position.col}: ${first.message}`, {
      details: { line: position.line, column: position.col },
      cause: first,
    });
  }

  const value: unknown = document.toJS() ?? {};
  const validate = ajv.compile(schema);
  if (validate(value)) {
    return value;
  }

  const error = pickError(validate.errors ?? []);
  throw describeError(error, document, lineCounter, sourceName, schema, codes);
}

/** Prefers unknown keys, then missing keys, then the deepest error, so the message points at the first thing to fix. */
function pickError(errors: ErrorObject[]): ErrorObject {
  const preferred =
    errors.find((error) => error.keyword === 'additionalProperties') ?? errors.find((error) => error.keyword === 'required');
  if (preferred) {
    return preferred;
  }

  return errors.reduce((deepest, error) =>
    error.instancePath.split('/').length > deepest.instancePath.split('/').length ? error : deepest,
  );
}

function describeError(
  error: ErrorObject,
  document: Document,
  lineCounter: LineCounter,
  sourceName: string,
  schema: Record<string, unknown>,
  codes: YamlErrorCodes,
): CdrError {
  const path = error.instancePath.split('/').slice(1).map(decodePointer);

  if (error.keyword === 'additionalProperties') {
    const unknown = String((error.params as { additionalProperty: string }).additionalProperty);
    const keyPath = [...path, unknown];
    const position = positionOf(document, lineCounter, keyPath, true);
    const parentSchema = schemaAt(schema, path);
    const known = Object.keys((parentSchema?.['properties'] as object | undefined) ?? {}).join(', ');
    return new CdrError(
      codes.unknownKey,
      `${sourceName}:${position.line}:${position.col}: unknown key "${keyPath.join('.')}"; ` +
        `expected one of: ${known}`,
      { details: { key: keyPath.join('.'), line: position.line, column: position.col } },
    );
  }

  if (error.keyword === 'required') {
    const missing = String((error.params as { missingProperty: string }).missingProperty);
    const keyPath = [...path, missing].join('.');
    const position = positionOf(document, lineCounter, path, false);
    const expected = describeSchema(schemaAt(schema, [...path, missing]));
    return new CdrError(codes.invalid, `${sourceName}:${position.line}:${position.col}: missing key "${keyPath}", expected ${expected}`, {
      details: { key: keyPath, line: position.line, column: position.col, expected, keyword: error.keyword },
    });
  }

  const key = path.length === 0 ? '(document)' : path.join('.');
  const position = positionOf(document, lineCounter, path, false);
  const expected = describeSchema(schemaAt(schema, path));
  const received = JSON.stringify(document.getIn(path) ?? null);
  return new CdrError(
    codes.invalid,
    `${sourceName}:${position.line}:${position.col}: ${key} must be ${expected}, got ${received}`,
    { details: { key, line: position.line, column: position.col, expected, keyword: error.keyword } },
  );
}

/**
 * Returns the dotted path of the key that starts at `offset`, from the indentation of the lines above
 * it (block-style YAML, as configuration and policy files are written).
 */
function duplicateKeyPath(text: string, offset: number): string {
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
  const keyMatch = /^(\s*)([^:#\s][^:#]*?)\s*:/.exec(text.slice(lineStart));
  if (!keyMatch) {
    return '?';
  }
  const path = [keyMatch[2]!];
  let indent = keyMatch[1]!.length;

  const lines = text.slice(0, lineStart).split('\n').reverse();
  for (const line of lines) {
    const parent = /^(\s*)([^:#\s-][^:#]*?)\s*:/.exec(line);
    if (parent && parent[1]!.length < indent) {
      path.unshift(parent[2]!);
      indent = parent[1]!.length;
      if (indent === 0) {
        break;
      }
    }
  }
  return path.join('.');
}

/** Finds the line and column of the key at `path` in YAML `text`; line 1 column 1 when absent. */
export function positionOfKey(text: string, path: string[]): { line: number; col: number } {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter });
  return positionOf(document, lineCounter, path, true);
}

function decodePointer(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** Finds the line and column of a value, or of its key when `ofKey` is set; line 1 column 1 when absent. */
function positionOf(
  document: Document,
  lineCounter: LineCounter,
  path: string[],
  ofKey: boolean,
): { line: number; col: number } {
  let node: unknown = document.contents;
  let target: Node | null = null;

  for (const segment of path) {
    if (!isMap(node)) {
      break;
    }
    const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === segment);
    if (!pair) {
      break;
    }
    target = (ofKey && segment === path[path.length - 1] ? pair.key : pair.value) as Node | null;
    node = pair.value;
  }

  const offset = target?.range?.[0] ?? 0;
  return lineCounter.linePos(offset);
}

function schemaAt(schema: Record<string, unknown>, path: string[]): Record<string, unknown> | undefined {
  let current: Record<string, unknown> | undefined = schema;
  for (const segment of path) {
    const properties = current?.['properties'] as Record<string, Record<string, unknown>> | undefined;
    const next: Record<string, unknown> | undefined =
      properties?.[segment] ??
      (current?.['additionalProperties'] as Record<string, unknown> | undefined) ??
      (current?.['items'] as Record<string, unknown> | undefined);
    current = typeof next === 'object' ? next : undefined;
  }
  return current;
}

/** Describes the form a schema accepts, for example "an integer from 1 to 4096". */
export function describeSchema(schema: Record<string, unknown> | undefined): string {
  if (!schema) {
    return 'a known key';
  }
  if (Array.isArray(schema['enum'])) {
    return `one of ${schema['enum'].map((value) => JSON.stringify(value)).join(', ')}`;
  }

  switch (schema['type']) {
    case 'integer':
    case 'number': {
      const noun = schema['type'] === 'integer' ? 'an integer' : 'a number';
      const minimum = schema['minimum'];
      const maximum = schema['maximum'];
      const exclusiveMinimum = schema['exclusiveMinimum'];
      if (minimum !== undefined && maximum !== undefined) {
        return `${noun} from ${minimum} to ${maximum}`;
      }
      if (exclusiveMinimum !== undefined) {
        return maximum !== undefined
          ? `${noun} greater than ${exclusiveMinimum} and at most ${maximum}`
          : `${noun} greater than ${exclusiveMinimum}`;
      }
      return minimum !== undefined ? `${noun} of at least ${minimum}` : noun;
    }
    case 'string':
      if (typeof schema['pattern'] === 'string') {
        return `a string matching /${schema['pattern']}/`;
      }
      return schema['minLength'] ? 'a non-empty string' : 'a string';
    case 'boolean':
      return 'true or false';
    case 'object':
      return 'a mapping';
    case 'array':
      return 'a list';
    default:
      return 'a valid value';
  }
}
