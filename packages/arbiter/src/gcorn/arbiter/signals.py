"""The master's signal intake: handlers only record the signal; the main loop acts.

A handler appends the signal number to a queue and writes one byte to a
self-pipe, so a main loop sleeping in `wait()` wakes at once.
"""

from __future__ import annotations

import collections
import os
import select
import signal
from collections.abc import Iterable, Iterator, Sequence
from types import FrameType

MASTER_SIGNALS: tuple[signal.Signals, ...] = (
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGCHLD,
)


def fork_with_signals_blocked(
        signals: Iterable[int] = MASTER_SIGNALS) -> tuple[int, set[signal.Signals | int]]:
    """fork() with a supervisor's `signals` blocked; returns (pid, mask to restore).

    The parent's mask is restored here. The child must restore it itself once
    it has replaced the supervisor's handlers, so a signal aimed at the new child
    (TERM right after it was forked) is neither lost nor taken for the parent's
    (the child inherits the parent's signal wake-up pipe, too).
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return pid, old


def exited_children() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of each child that has exited, without blocking: SIGCHLD's work."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def restore_signal_mask(mask: set[signal.Signals | int]) -> None:
    """In a forked child: deliver the signals held back during fork."""
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class SignalQueue:
    """Signals received by the master, in order, with a self-pipe to wake the loop."""

    def __init__(self) -> None:
        self._pending: collections.deque[int] = collections.deque()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def install(self) -> None:
        """Route every master signal to record()."""
        for sig in MASTER_SIGNALS:
            signal.signal(sig, self.record)

    def record(self, signum: int, frame: FrameType | None = None) -> None:
        """Signal handler: queue the signal and wake the loop; nothing else."""
        self._pending.append(signum)
        self.wake()

    def wake(self) -> None:
        """Make the next (or current) wait() return at once."""
        if self._write_fd < 0:
            return  # closed at the end of a shutdown: a late signal has nothing to wake
        try:
            os.write(self._write_fd, b"!")
        except BlockingIOError:
            # the pipe is full, so a wake-up is already pending: nothing is lost
            return

    def wait(
        self, timeout: float, read_fds: Sequence[int] = (), write_fds: Sequence[int] = ()
    ) -> tuple[list[int], list[int]]:
        """Sleep until a signal arrives, one of the extra fds is ready, or `timeout` passes.

        Returns the extra fds found ready (readable, writable).
        """
        if self._pending:
            timeout = 0
        readable, writable, _ = select.select(
            [self._read_fd, *read_fds], list(write_fds), [], max(0.0, timeout)
        )
        if self._read_fd in readable:
            self._drain()
            readable.remove(self._read_fd)
        return readable, writable

    def _drain(self) -> None:
        while True:
            try:
                if not os.read(self._read_fd, 4096):
                    return
            except BlockingIOError:
                return

    def pop(self) -> int | None:
        """The oldest unhandled signal, or None."""
        return self._pending.popleft() if self._pending else None

    def close_in_child(self) -> None:
        """In a forked child: restore default handlers and close the pipe."""
        for sig in MASTER_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        self._pending.clear()
        self.close()

    def close(self) -> None:
        """Close the self-pipe (idempotent)."""
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                os.close(fd)
        self._read_fd = self._write_fd = -1
