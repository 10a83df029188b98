import { readFileSync, readdirSync, statSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

import test from 'ava';
import { zipSync } from 'fflate';

import { CdrError } from '../services/common/errors.js';
import { parseDmarcReport, recordCounters } from '../services/repository/feeds/dmarc.js';
import { cdrctl, removeNode, SHARED_DATA, startNode } from './helpers/node.js';

const PARSEDMARC = join(SHARED_DATA, 'dmarc', 'parsedmarc');
const STALWART = join(SHARED_DATA, 'auth-results', 'stalwart-mail-auth');

function filesUnder(folder: string): string[] {
  return readdirSync(folder).flatMap((name) => {
    const path = join(folder, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

async function outcome(path: string): Promise<{ records: number; layers: string; flags: number } | { code: string }> {
  try {
    const report = await parseDmarcReport(readFileSync(path), path);
    return { records: report.records.length, layers: report.layers.join('>'), flags: report.flags.length };
  } catch (error) {
    return { code: (error as CdrError).code };
  }
}

/** Every file under dmarc/: records and layers it decodes to, or the code it is rejected with. */
const PARSEDMARC_OUTCOMES: Record<string, { records: number; layers: string; flags: number } | { code: string }> = {
  'aggregate/!example.com!1538204542!1538463818.xml': { records: 1, layers: '', flags: 0 },
  'aggregate/!large-example.com!1711897200!1711983600.xml': { records: 2286, layers: '', flags: 0 },
  'aggregate/Report domain- borschow.com Submitter- google.com Report-ID- 949348866075514174.eml': { records: 1, layers: 'mail>zip', flags: 0 },
  'aggregate/addisonfoods.com!example.com!1536105600!1536191999.xml': { records: 1, layers: '', flags: 0 },
  'aggregate/empty_reason.xml': { records: 1, layers: '', flags: 0 },
  'aggregate/estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940.xml.zip': { records: 1, layers: 'zip', flags: 0 },
  'aggregate/example.net!example.com!1529366400!1529452799.xml': { records: 1, layers: '', flags: 0 },
  'aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz': { records: 1, layers: 'gzip', flags: 0 },
  // Declares UTF-8 but is not: read as Latin-1.
  'aggregate/invalid_utf_8.xml': { records: 1, layers: '', flags: 0 },
  // <email><bad-xml@bad-xml.net></email> is not well-formed.
  'aggregate/invalid_xml.xml': { code: 'ERR_DMARC_NOT_XML' },
  // A CR LF after the gzip trailer.
  'aggregate/mimecast-weird-gzip.eml': { records: 1, layers: 'mail>gzip', flags: 0 },
  'aggregate/old_draft_from_wiki.xml': { records: 1, layers: '', flags: 0 },
  'aggregate/protection.outlook.com!example.com!1711756800!1711843200.xml': { records: 1, layers: '', flags: 0 },
  'aggregate/rfc9990-example.net!example.com!1700000000!1700086399.xml': { records: 2, layers: '', flags: 0 },
  'aggregate/rfc9990-sample.xml': { records: 1, layers: '', flags: 1 },
  'aggregate/twilight.eml': { records: 1, layers: 'mail>zip', flags: 0 },
  'aggregate/usssa.com!example.com!1538784000!1538870399.xml': { records: 2, layers: '', flags: 0 },
  // "Pass" and "None" capitalised: kept and flagged.
  'aggregate_invalid/report_with_upper_cased_pass.xml': { records: 1, layers: '', flags: 5 },
  'empty.xml': { code: 'ERR_DMARC_EMPTY' },
  'extract_report/changed-input.xml': { records: 20, layers: '', flags: 0 },
  'extract_report/nice-input.xml': { records: 20, layers: '', flags: 0 },
  'extract_report/nice-input.xml.gz': { records: 20, layers: 'gzip', flags: 0 },
  'extract_report/nice-input.xml.zip': { records: 20, layers: 'zip', flags: 0 },
  // Failure (RUF) reports and TLS reports are not aggregate reports.
  'failure/DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml': { code: 'ERR_DMARC_INVALID' },
  'failure/[Netease DMARC Failure Report] Rent Reminder.eml': { code: 'ERR_DMARC_INVALID' },
  'failure/dmarc_ruf_report_linkedin.crlf.eml': { code: 'ERR_DMARC_INVALID' },
  'failure/dmarc_ruf_report_linkedin.eml': { code: 'ERR_DMARC_INVALID' },
  'failure/exim_plain_text_only_no_arf_part.eml': { code: 'ERR_DMARC_INVALID' },
  'smtp_tls/google.com_smtp_tls_report.eml': { code: 'ERR_DMARC_NOT_XML' },
  'smtp_tls/mail.ru.json': { code: 'ERR_DMARC_NOT_XML' },
  'smtp_tls/rfc8460.json': { code: 'ERR_DMARC_NOT_XML' },
  'smtp_tls/smtp_tls.json': { code: 'ERR_DMARC_NOT_XML' },
};

test('every parsedmarc sample decodes or is rejected', async (t) => {
  const files = filesUnder(PARSEDMARC).map((file) => relative(PARSEDMARC, file));
  t.deepEqual(files.sort(), Object.keys(PARSEDMARC_OUTCOMES).sort());
  for (const [file, expected] of Object.entries(PARSEDMARC_OUTCOMES)) {
    t.deepEqual(await outcome(join(PARSEDMARC, file)), expected, file);
  }
});

interface StalwartExpected {
  policy_published: { domain: string; p: string; sp: string };
  record: {
    row: { source_ip: string; count: number; policy_evaluated: { disposition: string; dkim: string; spf: string } };
    identifiers: { header_from: string };
    auth_results: { dkim: { domain: string; result: string }[]; spf: { domain: string; result: string }[] };
  }[];
}

test('stalwart reports match expected results', async (t) => {
  const reports = filesUnder(join(STALWART, 'dmarc-feedback')).filter((file) => /\.(xml|eml)$/.test(file));
  t.is(reports.length, 10);
  for (const file of reports) {
    const expected = JSON.parse(readFileSync(file.replace(/\.(xml|eml)$/, '.json'), 'utf8')) as StalwartExpected;
    const report = await parseDmarcReport(readFileSync(file), file);
    t.is(report.domain, expected.policy_published.domain.toLowerCase(), file);
    t.is(report.policy.p, expected.policy_published.p.toLowerCase(), file);
    if (report.policy.sp !== undefined) {
      t.is(report.policy.sp, expected.policy_published.sp.toLowerCase(), `${file} sp`);
    }
    t.deepEqual(
      report.records.map((record) => ({
        ip: record.sourceIp,
        count: record.count,
        disposition: record.disposition,
        dkim: record.dkim,
        spf: record.spf,
        from: record.headerFrom,
        dkimResults: record.dkimResults,
        spfResults: record.spfResults,
      })),
      expected.record.map((record) => ({
        ip: record.row.source_ip,
        count: record.row.count,
        disposition: record.row.policy_evaluated.disposition.toLowerCase(),
        dkim: record.row.policy_evaluated.dkim.toLowerCase(),
        spf: record.row.policy_evaluated.spf.toLowerCase(),
        from: record.identifiers.header_from.toLowerCase(),
        dkimResults: record.auth_results.dkim.map(({ domain, result }) => ({ domain, result: result.toLowerCase() })),
        spfResults: record.auth_results.spf.map(({ domain, result }) => ({ domain, result: result.toLowerCase() })),
      })),
      file,
    );
  }
});

test('other auth-results files are rejected', async (t) => {
  const others = filesUnder(STALWART).filter((file) => !file.includes('dmarc-feedback'));
  t.is(others.length, 35);
  for (const file of others) {
    const result = await outcome(file);
    // JSON, DKIM and ARC vectors are not XML; mails (ARF, TLS-RPT) and YAML suites, whose first line
    // reads like a header field, have no report attached.
    t.true('code' in result && ['ERR_DMARC_NOT_XML', 'ERR_DMARC_INVALID'].includes(result.code), `${relative(STALWART, file)}: ${JSON.stringify(result)}`);
  }
});

test('report compressed twice rejected', async (t) => {
  const xml = readFileSync(join(PARSEDMARC, 'extract_report', 'nice-input.xml'));
  for (const [name, bytes] of [
    ['gzip in gzip', gzipSync(gzipSync(xml))],
    ['zip in gzip', gzipSync(zipSync({ 'report.xml': xml }))],
    ['gzip in zip', zipSync({ 'report.xml.gz': gzipSync(xml) })],
  ] as const) {
    const error = await t.throwsAsync(parseDmarcReport(bytes, name), { instanceOf: CdrError });
    t.is(error?.code, 'ERR_DMARC_DOUBLE_COMPRESSED', name);
  }
  const whitespace = await t.throwsAsync(parseDmarcReport(Buffer.from('  \n\t\n'), 'blank'), { instanceOf: CdrError });
  t.is(whitespace?.code, 'ERR_DMARC_EMPTY');
  const notReport = await t.throwsAsync(parseDmarcReport(Buffer.from('<?xml version="1.0"?><html><body/></html>'), 'html'), { instanceOf: CdrError });
  t.is(notReport?.code, 'ERR_DMARC_INVALID');
});

test('record counters follow results', (t) => {
  const counters = recordCounters({
    sourceIp: '192.0.2.1',
    count: 7,
    disposition: 'quarantine',
    dkim: 'fail',
    spf: 'pass',
    headerFrom: 'example.com',
    dkimResults: [{ domain: 'example.com', result: 'fail' }],
    spfResults: [{ domain: 'example.com', result: 'softfail' }],
  });
  t.deepEqual(counters, { messages: 7, spfPass: 0, spfFail: 7, spfNone: 0, dkimPass: 0, dkimFail: 7, dkimNone: 0, dmarcPass: 7, dmarcFail: 0 });
});

test('DMARC feed counts into the index', async (t) => {
  const node = await startNode();
  const scratch = mkdtempSync(join(tmpdir(), 'imp-cdr-dmarc-'));
  try {
    const report = join(PARSEDMARC, 'extract_report', 'nice-input.xml.gz');
    const parsed = await parseDmarcReport(readFileSync(report), report);
    const first = parsed.records[0]!;
    const expectedMessages = parsed.records.filter((record) => record.sourceIp === first.sourceIp).reduce((sum, record) => sum + record.count, 0);

    const added = await cdrctl(node, ['feeds', 'add', 'rua', report, 'dmarc', '--refresh', '0']);
    t.is(added.code, 0, added.stdout + added.stderr);
    t.regex(added.stdout, /^entries:\s+20 \(0 exclusions\)/m);

    const lookup = JSON.parse((await cdrctl(node, ['lookup', '--json', 'ip', first.sourceIp])).stdout) as { counters: Record<string, number> };
    t.is(lookup.counters['messages'], expectedMessages);

    const empty = join(scratch, 'empty.xml');
    writeFileSync(empty, '');
    const rejected = await cdrctl(node, ['feeds', 'add', 'rua-empty', empty, 'dmarc', '--refresh', '0']);
    t.is(rejected.code, 1);
    t.regex(rejected.stdout, /ERR_DMARC_EMPTY: .*empty\.xml: the report is empty/);
    t.regex(rejected.stderr, /^cdrctl: feed rua-empty added, but its first import failed: .*the report is empty.* \(ERR_DMARC_EMPTY\)\n$/);
  } finally {
    await node.stop();
    removeNode(node);
    rmSync(scratch, { recursive: true, force: true });
  }
});
