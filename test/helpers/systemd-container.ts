/**
 * systemd as PID 1 of a throw-away container, for tests of the units and the Debian package under
 * the real service manager.
 *
 * The container is a set of new namespaces (mount, PID, network, UTS, IPC, cgroup) whose root is an
 * overlay: this machine's root file system, read-only underneath, with a tmpfs on top that takes
 * every write. dpkg, systemd-tmpfiles and journald inside the container therefore change nothing on
 * the host. The container has its own /dev (a few bound device nodes), /run, /tmp, a read-only
 * /proc/sys and /sys, its own loopback interface and no other network, and a cgroup subtree of its
 * own. Units that would act on the shared kernel (module loading, sysctl, binfmt, clock) are masked.
 * `pivot_root`, not `chroot`, enters the root, because the kernel refuses user namespaces
 * (PrivateUsers=) to a chrooted process.
 *
 * Needs root, util-linux (unshare, nsenter, pivot_root), overlayfs and systemd.
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Units masked inside the container because they act on the kernel the host shares. */
const MASKED_UNITS = [
  'systemd-modules-load.service',
  'systemd-sysctl.service',
  'systemd-binfmt.service',
  'proc-sys-fs-binfmt_misc.automount',
  'systemd-timesyncd.service',
  'systemd-udevd.service',
  'systemd-udev-trigger.service',
  'systemd-remount-fs.service',
  'systemd-hwdb-update.service',
];

/**
 * Runs inside the new namespaces as their PID 1 and execs systemd. Arguments: the container folder
 * (with empty `layer` and `root` folders), the shared folder to bind at /mnt/host-share, and whether
 * the host has the hybrid (v1 name=systemd plus v2) or the unified cgroup layout.
 */
const BOOT_SCRIPT = String.raw`
set -eu
dir=$1; share=$2; layout=$3; masked=$4
root=$dir/root
mount -t tmpfs -o mode=0755,size=4g imp-cdr-layer "$dir/layer"
mkdir "$dir/layer/upper" "$dir/layer/work"
mount -t overlay imp-cdr-root -o "lowerdir=/,upperdir=$dir/layer/upper,workdir=$dir/layer/work" "$root"
mount -t proc proc "$root/proc"
mount --bind "$root/proc/sys" "$root/proc/sys"
mount -o remount,bind,ro "$root/proc/sys"
mount -t sysfs -o ro sysfs "$root/sys"
if [ "$layout" = hybrid ]; then
  mount -t tmpfs -o mode=0755 cgroup "$root/sys/fs/cgroup"
  mkdir "$root/sys/fs/cgroup/systemd" "$root/sys/fs/cgroup/unified"
  mount -t cgroup -o none,name=systemd cgroup "$root/sys/fs/cgroup/systemd"
  mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup/unified"
else
  mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
fi
mount -t tmpfs -o mode=0755 dev "$root/dev"
for node in null zero full random urandom tty; do
  touch "$root/dev/$node"
  mount --bind "/dev/$node" "$root/dev/$node"
done
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
mount -t tmpfs -o mode=0755 run "$root/run"
mount -t tmpfs -o mode=1777 tmp "$root/tmp"
mkdir -p "$root/mnt/host-share"
mount --bind "$share" "$root/mnt/host-share"
for unit in $masked; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
echo imp-cdr-test > "$root/etc/hostname"
mkdir "$root/.old-root"
cd "$root"
pivot_root . .old-root
umount -l /.old-root
rmdir /.old-root
exec /usr/bin/env -i container=imp-cdr-test /lib/systemd/systemd --system --log-target=journal --unit=sysinit.target
`;

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cgroupLayout(): { layout: 'hybrid' | 'unified'; hierarchies: string[] } {
  if (existsSync('/sys/fs/cgroup/systemd/cgroup.procs')) {
    return { layout: 'hybrid', hierarchies: ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'].filter((path) => existsSync(join(path, 'cgroup.procs'))) };
  }
  return { layout: 'unified', hierarchies: ['/sys/fs/cgroup'] };
}

/** Removes a cgroup and the groups below it, deepest first. Each must be empty of processes. */
function removeCgroup(path: string): void {
  if (!existsSync(path)) {
    return;
  }
  for (const entry of readdirSync(path)) {
    const child = join(path, entry);
    if (statSync(child).isDirectory()) {
      removeCgroup(child);
    }
  }
  rmdirSync(path);
}

/** One booted container. `stop()` kills it and removes its folder and cgroups. */
export class SystemdContainer {
  /** The folder on the host bound read-write at /mnt/host-share inside. */
  readonly shareDir: string;
  readonly #dir: string;
  readonly #launcher: ChildProcess;
  readonly #cgroups: string[];
  readonly #pid: number;
  #output = '';

  private constructor(dir: string, shareDir: string, launcher: ChildProcess, cgroups: string[], pid: number) {
    this.#dir = dir;
    this.shareDir = shareDir;
    this.#launcher = launcher;
    this.#cgroups = cgroups;
    this.#pid = pid;
    launcher.stdout?.on('data', (chunk: Buffer) => (this.#output += chunk.toString('utf8')));
    launcher.stderr?.on('data', (chunk: Buffer) => (this.#output += chunk.toString('utf8')));
  }

  /** Host PID of the container's systemd. */
  get pid(): number {
    return this.#pid;
  }

  /**
   * Boots systemd in a new container under `parentDir` and waits until it has reached
   * sysinit.target and systemctl reaches it.
   */
  static async boot(parentDir: string, timeoutMs = 60_000): Promise<SystemdContainer> {
    const dir = mkdtempSync(join(parentDir, 'systemd-container-'));
    const shareDir = join(dir, 'share');
    for (const sub of ['layer', 'root', 'share']) {
      mkdirSync(join(dir, sub));
    }
    const { layout, hierarchies } = cgroupLayout();
    const name = `imp-cdr-test-${process.pid}-${Date.now().toString(36)}`;
    const cgroups = hierarchies.map((hierarchy) => join(hierarchy, name));

    // The launcher moves itself into a fresh cgroup, so the new cgroup namespace is rooted there and
    // systemd's cgroups stay below it. Then it execs unshare, whose child is the container.
    const launch = [
      ...cgroups.map((path) => `mkdir '${path}' && echo $$ > '${path}/cgroup.procs'`),
      `exec unshare --mount --propagation private --pid --fork --net --uts --ipc --cgroup bash -c '${BOOT_SCRIPT.replaceAll("'", `'\\''`)}' boot '${dir}' '${shareDir}' ${layout} '${MASKED_UNITS.join(' ')}'`,
    ].join('\n');
    const launcher = spawn('bash', ['-c', launch], { stdio: ['ignore', 'pipe', 'pipe'] });

    const deadline = Date.now() + timeoutMs;
    let pid = 0;
    while (pid === 0 && Date.now() < deadline) {
      await sleep(100);
      if (launcher.exitCode !== null) {
        break;
      }
      const children = readFileSync(`/proc/${launcher.pid}/task/${launcher.pid}/children`, 'utf8').trim();
      const candidate = Number(children.split(' ')[0] || 0);
      if (candidate > 0 && readFileSync(`/proc/${candidate}/comm`, 'utf8').trim() === 'systemd') {
        pid = candidate;
      }
    }
    const container = new SystemdContainer(dir, shareDir, launcher, cgroups, pid);
    if (pid === 0) {
      await container.stop();
      throw new Error(`the container's systemd did not start: ${container.#output}`);
    }

    while (Date.now() < deadline) {
      const state = await container.run(['systemctl', 'is-system-running']);
      if (['running', 'degraded'].includes(state.stdout.trim())) {
        return container;
      }
      await sleep(250);
    }
    const failed = await container.run(['systemctl', '--failed', '--no-pager']);
    await container.stop();
    throw new Error(`the container's systemd did not finish booting: ${failed.stdout}${container.#output}`);
  }

  /** Runs a command inside the container (every namespace and its root), as root. */
  run(args: string[], timeoutMs = 120_000): Promise<CommandResult> {
    return new Promise((resolveRun) => {
      execFile('nsenter', ['--target', String(this.#pid), '--all', '--root', '--wd', '--', ...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        let code = 0;
        if (error) {
          code = typeof error.code === 'number' ? error.code : 1;
        }
        resolveRun({ code, stdout, stderr });
      });
    });
  }

  /** `systemctl show UNIT` as a map of the properties asked for. */
  async show(unit: string, properties: string[]): Promise<Record<string, string>> {
    const result = await this.run(['systemctl', 'show', unit, ...properties.map((property) => `--property=${property}`)]);
    const values: Record<string, string> = {};
    for (const line of result.stdout.split('\n')) {
      const separator = line.indexOf('=');
      if (separator > 0) {
        values[line.slice(0, separator)] = line.slice(separator + 1);
      }
    }
    return values;
  }

  /** Polls `check` every 250 ms until it returns a value other than undefined, or throws after `timeoutMs`. */
  async waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const value = await check();
      if (value !== undefined) {
        return value;
      }
      await sleep(250);
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  }

  /** Kills every process of the container, then removes its cgroups and folder. */
  async stop(): Promise<void> {
    if (this.#pid > 0) {
      try {
        process.kill(this.#pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    if (this.#launcher.exitCode === null && this.#launcher.signalCode === null) {
      await new Promise((resolveExit) => this.#launcher.once('exit', resolveExit));
    }
    // The kernel empties the cgroups a moment after the last process is reaped.
    for (let attempt = 0; attempt < 50; attempt += 1) {
      try {
        this.#cgroups.forEach(removeCgroup);
        break;
      } catch {
        await sleep(100);
      }
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
