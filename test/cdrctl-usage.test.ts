/**
 * cdrctl help and usage errors, run as a process: a usage error prints the problem, the synopsis of the
 * command and a hint on standard error and exits 2; `help` and `--help` print the full text and exit 0.
 * None of the command lines below reaches a repository, so no node is started.
 */

import test from 'ava';

import { runCdrctl as cdrctl } from './helpers/node.js';

const GLOBAL_HINT = 'Run "cdrctl help" for every command.';
const GLOBAL_USAGE = 'usage: cdrctl [--config FILE | --socket PATH] COMMAND [ARGS]';
const hint = (command: string) => `Run "cdrctl ${command} --help" for the options of ${command}, or "cdrctl help" for every command.`;

test('usage errors print one problem', async (t) => {
  const cases: Array<[string[], string[]]> = [
    [[], ['cdrctl: missing command (ERR_CLI_USAGE)', GLOBAL_USAGE, GLOBAL_HINT]],
    [['frobnicate'], ['cdrctl: unknown command "frobnicate" (ERR_CLI_USAGE)', GLOBAL_USAGE, GLOBAL_HINT]],
    [['--bogus', 'status'], ['cdrctl: unknown option "--bogus" before the command (ERR_CLI_USAGE)', GLOBAL_USAGE, GLOBAL_HINT]],
    [['--config'], ['cdrctl: --config needs a value (ERR_CLI_USAGE)', GLOBAL_USAGE, GLOBAL_HINT]],
    [['help', 'frobnicate'], ['cdrctl: unknown command "frobnicate" (ERR_CLI_USAGE)', GLOBAL_USAGE, GLOBAL_HINT]],
    [
      ['firmware', 'verify'],
      ['cdrctl: firmware verify needs exactly one BUNDLE, got 0 (ERR_CLI_USAGE)', 'usage: cdrctl firmware verify BUNDLE [--public-key PEM]', hint('firmware')],
    ],
    [
      ['audit', '--limit', '0'],
      ['cdrctl: --limit takes a whole number from 1 to 1000, got 0 (ERR_CLI_USAGE)', 'usage: cdrctl audit [--limit N] [--json]', hint('audit')],
    ],
    [
      ['status', '--jsn'],
      [
        "cdrctl: Unknown option '--jsn' (ERR_PARSE_ARGS_UNKNOWN_OPTION)",
        'usage: cdrctl status [--json]',
        hint('status'),
      ],
    ],
    [
      ['pair', 'join'],
      ['cdrctl: pair join needs exactly one HOST[:PORT], got 0 (ERR_CLI_USAGE)', 'usage: cdrctl pair join HOST[:PORT] [--fingerprint SHA256:...] [--code CODE]', hint('pair')],
    ],
    [['unpair', 'now'], ['cdrctl: unpair takes no arguments besides --local-only, got "now" (ERR_CLI_USAGE)', 'usage: cdrctl unpair [--local-only]', hint('unpair')]],
    [
      ['hw', 'inspect'],
      ['cdrctl: unknown hw subcommand "inspect"; expected check (ERR_CLI_USAGE)', 'usage: cdrctl hw check [--root DIR] [--allow-unsupported] [--json]', hint('hw')],
    ],
  ];
  for (const [args, lines] of cases) {
    const result = await cdrctl(args);
    const label = `cdrctl ${args.join(' ')}`;
    t.is(result.code, 2, label);
    t.is(result.stdout, '', label);
    t.deepEqual(result.stderr.split('\n'), [...lines, ''], label);
  }
});

test('unknown subcommand lists its synopses', async (t) => {
  const result = await cdrctl(['firmware', 'flash']);
  t.is(result.code, 2);
  t.deepEqual(result.stderr.split('\n'), [
    'cdrctl: unknown firmware subcommand "flash"; expected keygen, build, verify, apply, rollback or status (ERR_CLI_USAGE)',
    'usage: cdrctl firmware keygen --out DIR',
    '       cdrctl firmware build --deb FILE --key PEM --out BUNDLE [--model M ...] [--min-oos V]',
    '       cdrctl firmware verify BUNDLE [--public-key PEM]',
    '       cdrctl firmware apply BUNDLE [--public-key PEM] [--allow-downgrade] [--root DIR] [--allow-unsupported]',
    '       cdrctl firmware rollback',
    '       cdrctl firmware status [--json]',
    hint('firmware'),
    '',
  ]);
});

test('help prints every command', async (t) => {
  for (const args of [['help'], ['--help'], ['-h'], ['--config', '/nonexistent/cdr.yaml', '--help']]) {
    const result = await cdrctl(args);
    const label = `cdrctl ${args.join(' ')}`;
    t.is(result.code, 0, label);
    t.is(result.stderr, '', label);
    t.true(result.stdout.startsWith(`${GLOBAL_USAGE}\n\ncommands:\n`), label);
    for (const synopsis of ['status [--json]', 'lookup [--json] KIND KEY', 'client enroll NAME', 'policy set FILE', 'pair join HOST[:PORT]', 'unpair [--local-only]', 'hw check', 'firmware apply BUNDLE', 'console [--network-root DIR]', 'feeds export FORMAT FILE', 'help [COMMAND]']) {
      t.true(result.stdout.includes(`\n  ${synopsis}`), `${label}: ${synopsis}`);
    }
    t.true(result.stdout.includes('\n  --socket PATH   control socket path; overrides --config\n'), label);
  }
});

test('command help prints one command', async (t) => {
  for (const args of [['firmware', '--help'], ['help', 'firmware'], ['firmware', 'verify', '-h']]) {
    const result = await cdrctl(args);
    const label = `cdrctl ${args.join(' ')}`;
    t.is(result.code, 0, label);
    t.is(result.stderr, '', label);
    const lines = result.stdout.split('\n');
    t.is(lines[0], 'usage:', label);
    t.regex(lines[1]!, /^ {2}cdrctl firmware keygen --out DIR +write an Ed25519 signing key pair$/, label);
    t.false(result.stdout.includes('cdrctl pair'), `${label}: only firmware`);
    t.true(result.stdout.includes('\n  --config FILE '), label);
  }
});
