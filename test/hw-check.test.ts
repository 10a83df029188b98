/**
 * `cdrctl hw check --root DIR` on fixture trees: an O550 passes, E-series is rejected even with the
 * override, other hardware passes only with `--allow-unsupported`, which is logged, and each minimum
 * is checked at its exact value and one below.
 */

import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';

import test from 'ava';

import { parseCpuList } from '../hw/detect.js';
import { CDRCTL_MAIN } from './helpers/node.js';
import { O550_FIXTURE, writeHardwareFixture, type HardwareFixture } from './helpers/hw-fixture.js';

const execFileAsync = promisify(execFile);

interface Report {
  verdict: string;
  model: string;
  supported: boolean;
  checks: Array<{ name: string; status: string; code?: string; message: string }>;
}

async function hwCheck(fixture: HardwareFixture, extraArgs: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  const root = writeHardwareFixture(fixture);
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CDRCTL_MAIN, 'hw', 'check', '--root', root, ...extraArgs]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function hwReport(fixture: HardwareFixture, extraArgs: string[] = []): Promise<{ code: number; report: Report; stderr: string }> {
  const result = await hwCheck(fixture, ['--json', ...extraArgs]);
  return { code: result.code, report: JSON.parse(result.stdout) as Report, stderr: result.stderr };
}

function check(report: Report, name: string) {
  return report.checks.find((candidate) => candidate.name === name);
}

test('O550 fixture passes every check', async (t) => {
  const result = await hwCheck(O550_FIXTURE);
  t.is(result.code, 0);
  t.is(result.stderr, '');
  t.is(
    result.stdout,
    [
      'hardware check: PASS (O550)',
      '  model                  pass  O550 (DMI product name "O550", vendor "IMP Systems")',
      '  cores                  pass  8 (minimum 8)',
      '  memory                 pass  15.5 GiB (minimum 15.0 GiB)',
      '  disk                   pass  480 GB on sda (minimum 400 GB)',
      '  interface management   pass  eno1 3c:ec:ef:00:00:01',
      '  interface replication  pass  eno2 3c:ec:ef:00:00:02',
      '  interface service      pass  eno3 3c:ec:ef:00:00:03',
      '',
    ].join('\n'),
  );
});

test('E-series rejected despite override', async (t) => {
  for (const productName of ['E400', 'E-500', 'E series', 'e450']) {
    for (const extra of [[], ['--allow-unsupported']]) {
      const { code, report, stderr } = await hwReport({ ...O550_FIXTURE, productName }, extra);
      t.is(code, 1, productName);
      t.is(report.verdict, 'fail', productName);
      t.is(report.checks.length, 1, productName);
      t.is(report.checks[0]!.code, 'ERR_HW_E_SERIES', productName);
      t.is(
        report.checks[0]!.message,
        `E-series hardware ("${productName}") cannot run IMP-CDR, and --allow-unsupported does not change that; install IMP-CDR on an O550`,
      );
      t.is(stderr, '', 'no override is logged');
    }
  }
});

test('names like E-series but not', async (t) => {
  for (const productName of ['Eagle 9', 'ESXi Virtual Platform']) {
    const { report } = await hwReport({ ...O550_FIXTURE, productName });
    t.is(check(report, 'model')?.code, 'ERR_HW_UNSUPPORTED_MODEL', productName);
  }
});

test('unsupported model needs override', async (t) => {
  const vm = { ...O550_FIXTURE, productName: 'Standard PC (Q35 + ICH9, 2009)', cpuOnline: '0-1', interfaces: [{ name: 'eth0', physical: true }] };

  const rejected = await hwReport(vm);
  t.is(rejected.code, 1);
  t.is(rejected.report.verdict, 'fail');
  t.is(rejected.report.supported, false);
  t.is(check(rejected.report, 'model')?.status, 'fail');
  t.is(check(rejected.report, 'model')?.code, 'ERR_HW_UNSUPPORTED_MODEL');
  t.is(
    check(rejected.report, 'model')?.message,
    'DMI product name "Standard PC (Q35 + ICH9, 2009)" is not a supported model; expected "O550". On lab hardware, run again with --allow-unsupported',
  );
  t.is(rejected.stderr, '');

  const accepted = await hwReport(vm, ['--allow-unsupported']);
  t.is(accepted.code, 0);
  t.is(accepted.report.verdict, 'override');
  t.is(accepted.report.model, 'Standard PC (Q35 + ICH9, 2009)');
  t.deepEqual(
    accepted.report.checks.map((entry) => [entry.name, entry.status, entry.code]),
    [
      ['model', 'warn', 'ERR_HW_UNSUPPORTED_MODEL'],
      ['cores', 'warn', 'ERR_HW_BELOW_MINIMUM'],
      ['memory', 'pass', undefined],
      ['disk', 'pass', undefined],
      ['interface management', 'warn', 'ERR_HW_INTERFACE_MISSING'],
      ['interface replication', 'warn', 'ERR_HW_INTERFACE_MISSING'],
      ['interface service', 'warn', 'ERR_HW_INTERFACE_MISSING'],
    ],
  );

  const logLine = JSON.parse(accepted.stderr.trim()) as { level: string; msg: string; model: string; overridden: Array<{ check: string }> };
  t.is(logLine.level, 'warn');
  t.is(logLine.msg, 'hardware check accepted by --allow-unsupported on unsupported hardware');
  t.is(logLine.model, 'Standard PC (Q35 + ICH9, 2009)');
  t.deepEqual(
    logLine.overridden.map((entry) => entry.check),
    ['model', 'cores', 'interface management', 'interface replication', 'interface service'],
  );
});

test('missing DMI needs override', async (t) => {
  const { code, report } = await hwReport({ ...O550_FIXTURE, productName: undefined });
  t.is(code, 1);
  t.is(check(report, 'model')?.code, 'ERR_HW_DMI_UNREADABLE');
  t.is(report.model, 'unknown');

  const accepted = await hwReport({ ...O550_FIXTURE, productName: undefined }, ['--allow-unsupported']);
  t.is(accepted.code, 0);
  t.is(accepted.report.verdict, 'override');
});

test('override leaves O550 failures failing', async (t) => {
  const { code, report, stderr } = await hwReport({ ...O550_FIXTURE, cpuOnline: '0-3' }, ['--allow-unsupported']);
  t.is(code, 1);
  t.is(report.verdict, 'fail');
  t.is(check(report, 'cores')?.status, 'fail');
  t.is(check(report, 'cores')?.message, '4 is below the minimum of 8');
  t.is(stderr, '');
});

test('minimums at limit and one below', async (t) => {
  const cases: Array<[string, HardwareFixture, string, string | undefined]> = [
    ['cores 8', { cpuOnline: '0-7' }, 'cores', undefined],
    ['cores 7', { cpuOnline: '0-6' }, 'cores', 'ERR_HW_BELOW_MINIMUM'],
    ['cores 8 as list', { cpuOnline: '0,2-7,9' }, 'cores', undefined],
    ['memory 15 GiB', { memTotalKb: 15 * 1024 * 1024 }, 'memory', undefined],
    ['memory 15 GiB - 1 kB', { memTotalKb: 15 * 1024 * 1024 - 1 }, 'memory', 'ERR_HW_BELOW_MINIMUM'],
    ['disk 400 GB', { disks: [{ name: 'sda', sectors: 781_250_000 }] }, 'disk', undefined],
    ['disk 400 GB - 1 sector', { disks: [{ name: 'sda', sectors: 781_249_999 }] }, 'disk', 'ERR_HW_BELOW_MINIMUM'],
    ['only a removable disk', { disks: [{ name: 'sdb', sectors: 2_000_000_000, removable: true }] }, 'disk', 'ERR_HW_FACT_UNREADABLE'],
    ['only loop and zram', { disks: [{ name: 'loop0', sectors: 2_000_000_000 }, { name: 'zram0', sectors: 2_000_000_000 }] }, 'disk', 'ERR_HW_FACT_UNREADABLE'],
    ['no cpu list', { cpuOnline: undefined }, 'cores', 'ERR_HW_FACT_UNREADABLE'],
    ['malformed cpu list', { cpuOnline: '7-0' }, 'cores', 'ERR_HW_FACT_UNREADABLE'],
    ['no meminfo', { memTotalKb: undefined }, 'memory', 'ERR_HW_FACT_UNREADABLE'],
  ];
  for (const [label, override, name, expectedCode] of cases) {
    const { code, report } = await hwReport({ ...O550_FIXTURE, ...override });
    t.is(check(report, name)?.code, expectedCode, label);
    t.is(check(report, name)?.status, expectedCode ? 'fail' : 'pass', label);
    t.is(code, expectedCode ? 1 : 0, label);
  }
});

test('interface roles need physical ports', async (t) => {
  const interfaces = [
    { name: 'eno1', physical: true },
    { name: 'eno2', physical: false },
    { name: 'eth0', physical: true },
  ];
  const { code, report } = await hwReport({ ...O550_FIXTURE, interfaces });
  t.is(code, 1);
  t.is(check(report, 'interface management')?.status, 'pass');
  t.is(check(report, 'interface replication')?.code, 'ERR_HW_INTERFACE_MISSING');
  t.is(check(report, 'interface replication')?.message, 'eno2 is a virtual interface; the replication role needs a physical port');
  t.is(check(report, 'interface service')?.message, 'eno3 is missing (present: eno1, eno2, eth0)');
});

test('hw check bad command lines', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /hw needs a subcommand: check \(ERR_CLI_USAGE\)/],
    [['inspect'], /unknown hw subcommand "inspect"; expected check \(ERR_CLI_USAGE\)/],
    [['check', '--root', '/nonexistent/imp-cdr-root'], /--root \/nonexistent\/imp-cdr-root does not exist; give the folder that contains sys\/ and proc\/ \(ERR_CLI_USAGE\)/],
    [['check', '--force'], /Unknown option '--force'/],
  ];
  for (const [args, message] of cases) {
    try {
      await execFileAsync(process.execPath, [CDRCTL_MAIN, 'hw', ...args]);
      t.fail(`hw ${args.join(' ')} succeeded`);
    } catch (error) {
      const failed = error as { code: number; stderr: string };
      t.is(failed.code, 2, args.join(' '));
      t.regex(failed.stderr, message);
    }
  }
});

test('CPU list parsing', (t) => {
  const cases: Array<[string | undefined, number | undefined]> = [
    ['0', 1],
    ['0-7', 8],
    ['0-3,8-11', 8],
    ['0,2,4', 3],
    ['', undefined],
    ['7-0', undefined],
    ['0-', undefined],
    ['a-b', undefined],
    [undefined, undefined],
  ];
  for (const [text, expected] of cases) {
    t.is(parseCpuList(text), expected, String(text));
  }
});
