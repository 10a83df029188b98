"""Starts imp-cdr-console@ on a new pseudo-terminal under systemd and completes its first-boot wizard.

Prints the instance name on its first line, then everything the console wrote, then the unit's state
on a line starting with `unit state:`, and stops the unit. Exits non-zero when an expected text does not
appear within its timeout.
"""

import os
import pty
import select
import subprocess
import sys
import time

master, follower = pty.openpty()
tty = os.ttyname(follower)
instance = subprocess.check_output(['systemd-escape', '--template=imp-cdr-console@.service', tty[len('/dev/'):]], text=True).strip()
print(instance, flush=True)
subprocess.check_call(['systemctl', 'start', '--no-block', instance])
screen = b''


def wait_for(text, count=1, timeout=60):
    """Reads the terminal until `text` appeared `count` times since the start."""
    global screen
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                screen += os.read(master, 65536)
            except OSError:
                # Between two console processes no process has the terminal open.
                time.sleep(0.1)
        if screen.count(text) >= count:
            return
    sys.stdout.write(screen.decode('utf-8', 'replace'))
    sys.exit(f'timed out waiting for {text!r} to appear {count} times')


def answer(line):
    os.write(master, line.encode() + b'\r')


wait_for(b'address, CIDR such as')
answer('192.0.2.10/24')
wait_for(b'Gateway')
answer('192.0.2.1')
wait_for(b'New admin password')
answer('correct horse battery')
wait_for(b'Repeat the password')
answer('correct horse battery')
wait_for(b'Choice:')
# Leaving the console ends the process; systemd starts it again, and the menu comes back.
answer('0')
wait_for(b'Choice:', 2)
sys.stdout.write(screen.decode('utf-8', 'replace'))
# Read while this script keeps the terminal open: once it exits, the console gets a hangup and restarts.
state = subprocess.check_output(['systemctl', 'show', instance, '--property=ActiveState,NRestarts,TTYPath'], text=True)
print('\nunit state:', ' '.join(state.split()))
subprocess.check_call(['systemctl', 'stop', instance])
