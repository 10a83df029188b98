/**
 * Builds fixture trees of sys/ and proc/ files, shaped as Linux exposes them, for `cdrctl hw check --root`.
 */

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface HardwareFixture {
  /** DMI product name; undefined leaves sys/class/dmi/id out, as in a container. */
  productName?: string | undefined;
  vendor?: string;
  /** Content of sys/devices/system/cpu/online, such as "0-7". */
  cpuOnline?: string;
  /** MemTotal in kB. */
  memTotalKb?: number;
  /** Block devices: name, size in 512-byte sectors and whether removable. */
  disks?: Array<{ name: string; sectors: number; removable?: boolean }>;
  /** Network interfaces: name and whether a device backs it. */
  interfaces?: Array<{ name: string; physical: boolean; address?: string }>;
}

/** An O550 that meets its profile exactly: 8 cores, 16 GiB, a 480 GB disk, eno1 to eno3. */
export const O550_FIXTURE: HardwareFixture = {
  productName: 'O550',
  vendor: 'IMP Systems',
  cpuOnline: '0-7',
  memTotalKb: 16_303_436,
  disks: [
    { name: 'sda', sectors: 937_703_088 },
    { name: 'loop0', sectors: 10_000_000_000 },
    { name: 'sdb', sectors: 2_000_000_000, removable: true },
  ],
  interfaces: [
    { name: 'eno1', physical: true, address: '3c:ec:ef:00:00:01' },
    { name: 'eno2', physical: true, address: '3c:ec:ef:00:00:02' },
    { name: 'eno3', physical: true, address: '3c:ec:ef:00:00:03' },
    { name: 'lo', physical: false, address: '00:00:00:00:00:00' },
  ],
};

/** Writes `fixture` under a new temporary folder and returns the folder. */
export function writeHardwareFixture(fixture: HardwareFixture): string {
  const root = mkdtempSync(join(tmpdir(), 'imp-cdr-hw-'));
  const write = (path: string, text: string) => {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), `${text}\n`);
  };

  if (fixture.productName !== undefined) {
    write('sys/class/dmi/id/product_name', fixture.productName);
    write('sys/class/dmi/id/sys_vendor', fixture.vendor ?? 'unknown');
  }
  if (fixture.cpuOnline !== undefined) {
    write('sys/devices/system/cpu/online', fixture.cpuOnline);
  }
  if (fixture.memTotalKb !== undefined) {
    write('proc/meminfo', `MemTotal:       ${fixture.memTotalKb} kB\nMemFree:         1000000 kB`);
  }
  for (const disk of fixture.disks ?? []) {
    write(`sys/block/${disk.name}/size`, String(disk.sectors));
    write(`sys/block/${disk.name}/removable`, disk.removable ? '1' : '0');
  }
  for (const netInterface of fixture.interfaces ?? []) {
    write(`sys/class/net/${netInterface.name}/address`, netInterface.address ?? '');
    if (netInterface.physical) {
      mkdirSync(join(root, 'sys/class/net', netInterface.name, 'device'), { recursive: true });
    }
  }
  return root;
}
