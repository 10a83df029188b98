/**
 * Reads the facts a hardware check needs from DMI, sysfs and procfs under a root folder: `/` on a
 * node, a fixture tree in tests.
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A fixed disk, from `/sys/block`. */
export interface DiskFacts {
  name: string;
  bytes: number;
}

/** A network interface, from `/sys/class/net`. */
export interface InterfaceFacts {
  name: string;
  /** MAC address, or '' when the interface has none. */
  address: string;
  /** Whether a device backs the interface (`/sys/class/net/NAME/device` exists). */
  physical: boolean;
}

/** Hardware facts read from one node. A fact that could not be read is undefined. */
export interface HardwareFacts {
  productName: string | undefined;
  vendor: string | undefined;
  cores: number | undefined;
  memoryBytes: number | undefined;
  disks: DiskFacts[];
  interfaces: InterfaceFacts[];
}

/** Block devices that are not disks: loop, RAM, compressed RAM, optical and device-mapper nodes. */
const VIRTUAL_BLOCK_DEVICE = /^(loop|ram|zram|sr|dm-|md|nbd)/;

/** Reads the hardware facts under `root`. Missing files leave their fact undefined or empty. */
export function readHardwareFacts(root: string): HardwareFacts {
  return {
    productName: readTrimmed(join(root, 'sys/class/dmi/id/product_name')),
    vendor: readTrimmed(join(root, 'sys/class/dmi/id/sys_vendor')),
    cores: parseCpuList(readTrimmed(join(root, 'sys/devices/system/cpu/online'))),
    memoryBytes: parseMemTotal(readTrimmed(join(root, 'proc/meminfo'))),
    disks: readDisks(join(root, 'sys/block')),
    interfaces: readInterfaces(join(root, 'sys/class/net')),
  };
}

/** Counts the CPUs in a sysfs CPU list such as "0-7" or "0,2-3"; undefined when it is malformed. */
export function parseCpuList(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(text)) {
    return undefined;
  }
  let count = 0;
  for (const range of text.split(',')) {
    const [first, last] = range.split('-').map(Number);
    if (last !== undefined && last < first!) {
      return undefined;
    }
    count += last === undefined ? 1 : last - first! + 1;
  }
  return count;
}

function parseMemTotal(text: string | undefined): number | undefined {
  const match = /^MemTotal:\s+(\d+) kB$/m.exec(text ?? '');
  return match ? Number(match[1]) * 1024 : undefined;
}

/** Lists fixed disks with their sizes; `size` in sysfs counts 512-byte sectors whatever the device. */
function readDisks(blockDir: string): DiskFacts[] {
  const disks: DiskFacts[] = [];
  for (const name of listDir(blockDir)) {
    if (VIRTUAL_BLOCK_DEVICE.test(name) || readTrimmed(join(blockDir, name, 'removable')) === '1') {
      continue;
    }
    const sectors = Number(readTrimmed(join(blockDir, name, 'size')));
    if (Number.isSafeInteger(sectors) && sectors > 0) {
      disks.push({ name, bytes: sectors * 512 });
    }
  }
  return disks.sort((left, right) => right.bytes - left.bytes);
}

function readInterfaces(netDir: string): InterfaceFacts[] {
  return listDir(netDir)
    .sort()
    .map((name) => ({
      name,
      address: readTrimmed(join(netDir, name, 'address')) ?? '',
      physical: existsSync(join(netDir, name, 'device')),
    }));
}

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
