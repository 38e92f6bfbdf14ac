# SPDX-License-Identifier: LGPL-2.1-or-later
"""Running the smolvm CLI on a pseudo-terminal, for the tests of its progress
bar and of Ctrl-C (test-cli-jobs.py against a mock, test-cli.py against
smolvmd).

The CLI gets the slave side of a pty as its controlling terminal, standard
input and (unless said otherwise) standard output; standard error is a pipe,
to tell the bar from the error. Ctrl-C is typed: \\x03 written to the master
makes the terminal send SIGINT to the CLI.
"""

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time

DEADLINE = 60  # bounds every wait; never an assertion on time
ERASE = '\r\x1b[K'
# A drawn bar: carriage return, the line, clear to the end of the line.
BAR_RE = re.compile(r'\r([^\r\n\x1b]+)\x1b\[K')


def bars(out):
    """The lines of the bar drawn in @out, in order."""
    return BAR_RE.findall(out)


class PtyRun:
    """The CLI on a pseudo-terminal; collects what it writes on the terminal."""

    def __init__(self, argv, env, stdout_tty=True, columns=120):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 24, columns, 0, 0))

        def controlling_tty():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            argv, env=env, stdin=slave, stdout=slave if stdout_tty else subprocess.PIPE,
            stderr=subprocess.PIPE, preexec_fn=controlling_tty)
        os.close(slave)
        self.raw = b''
        self.err = ''
        self.rc = None

    @property
    def out(self):
        # the terminal turns \n into \r\n
        return self.raw.decode(errors='replace').replace('\r\n', '\n')

    def pump(self, timeout=0.05):
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the slave side is closed
                data = b''
            self.raw += data
            return bool(data)
        return False

    def wait_for(self, predicate, what):
        end = time.monotonic() + DEADLINE
        while not predicate():
            if time.monotonic() > end:
                self.kill()
                raise AssertionError('gave up waiting for %s; output so far: %r' % (what, self.out))
            self.pump()

    def ctrl_c(self):
        os.write(self.master, b'\x03')

    def finish(self):
        end = time.monotonic() + DEADLINE
        while self.proc.poll() is None:
            if time.monotonic() > end:
                self.kill()
                raise AssertionError('smolvm did not end; output: %r' % self.out)
            self.pump()
        while self.pump(0.01):
            pass
        stdout, stderr = self.proc.communicate()
        self.err = stderr.decode()
        if stdout:
            self.raw += stdout
        self.rc = self.proc.returncode
        os.close(self.master)
        return self

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
