"""The replay's two output files: all of them or nothing, formatted beside the rules.

Formatting JSON costs a part of what the rules cost. With a CPU to spare (a JSONL replay), a
replay with more than one batch of outputs formats them in a second process (started then, so
a small replay pays nothing for it), fed with each output's field values: the process running
the rules only reads fields and pickles tuples. Where the CPUs are busy already (the replay
from Kafka reads in a process of its own), the lines are formatted in place, batch by batch:
the hand-over would cost as much as the formatting. The files appear, by an atomic rename,
only once everything is on disk.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

from streams.contracts import JsonlCodec
from streams.contracts.records import ReferralDecision, RewardGranted, TaggedFields
from streams.rules.model import Output

REWARDS_FILE = "reward-granted.jsonl"
DECISIONS_FILE = "referral-decisions.jsonl"

BATCH = 5_000  # outputs per message to the formatting process, and the threshold to start it

_TAGGED = TaggedFields((RewardGranted, ReferralDecision))
_FILES = (REWARDS_FILE, DECISIONS_FILE)
_END = b""


class OutputWriterError(RuntimeError):
    """The formatting process failed or went away; the output files were not written."""


class ReplayFiles:
    """Writes outputs in emission order into `out_dir`'s two files (see the module)."""

    def __init__(self, out_dir: Path, *, batch: int = BATCH, background: bool = True) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self._batch = batch
        self._background = background
        self._pending: list[Output] = []
        self._temps: list[str] = []
        for name in _FILES:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115  # reopened by the writer
                "w", encoding="utf-8", dir=out_dir, prefix=f".{name}.", delete=False
            )
            handle.close()
            self._temps.append(handle.name)
        self._lines: _LineFiles | None = None  # formatting in place
        self._child: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def write(self, output: Output) -> None:
        self._pending.append(output)
        if len(self._pending) >= self._batch:
            if self._background:
                self._send()
            else:
                self._put()

    def commit(self) -> None:
        """Write what is pending, wait until all is on disk, then make both files appear."""
        if self._conn is None:
            self._put()
            assert self._lines is not None
            self._lines.close(sync=True)
            self._lines = None
        else:
            self._send()
            self._conn.send_bytes(_END)
            try:
                failure = self._conn.recv()
            except EOFError:
                failure = "the formatting process exited without a word"
            self._stop()
            if failure is not None:
                raise OutputWriterError(f"replay output not written: {failure}")
        for name, temp in zip(_FILES, self._temps, strict=True):
            os.replace(temp, self.out_dir / name)
        self._temps = []

    def discard(self) -> None:
        """Leave nothing behind: stop the formatting process, remove the temporary files."""
        self._stop()
        if self._lines is not None:
            self._lines.close(sync=False)
            self._lines = None
        for temp in self._temps:
            Path(temp).unlink(missing_ok=True)
        self._temps = []

    def _put(self) -> None:
        if self._lines is None:
            self._lines = _LineFiles(self._temps)
        self._lines.put(self._pending)
        self._pending = []

    def _send(self) -> None:
        if self._conn is None:
            # Spawned, not forked: the caller may run an event loop or threads.
            context = multiprocessing.get_context("spawn")
            self._conn, theirs = context.Pipe()
            child = context.Process(
                target=_format_lines, args=(theirs, self._temps), name="replay-writer"
            )
            child.start()
            self._child = child
            theirs.close()
        try:
            self._conn.send_bytes(
                pickle.dumps(_TAGGED.dump(self._pending), pickle.HIGHEST_PROTOCOL)
            )
        except OSError as exc:  # a broken pipe: the process died
            raise OutputWriterError(f"the formatting process went away: {exc}") from exc
        self._pending = []

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._child is not None:
            self._child.join(timeout=10)
            if self._child.is_alive():
                self._child.kill()
                self._child.join()
            self._child = None


@contextmanager
def output_files(out_dir: Path, *, background: bool = True) -> Iterator[Callable[[Output], None]]:
    """A writer of the two output files; they appear (atomically) only if the block succeeds.
    `background`: format in a second process (see the module)."""
    files = ReplayFiles(out_dir, background=background)
    try:
        yield files.write
        files.commit()
    finally:
        files.discard()


class _LineFiles:
    """The rewards and decisions files, open for appending outputs as lines."""

    def __init__(self, paths: list[str]) -> None:
        self._codec = JsonlCodec()
        self._rewards = open(paths[0], "a", encoding="utf-8")  # noqa: SIM115  # closed by close
        self._decisions = open(paths[1], "a", encoding="utf-8")  # noqa: SIM115

    def put(self, outputs: Iterable[Output]) -> None:
        rewards, decisions, line = self._rewards.write, self._decisions.write, self._codec.format
        for output in outputs:
            (rewards if isinstance(output, RewardGranted) else decisions)(line(output) + "\n")

    def close(self, *, sync: bool) -> None:
        """Close both files, first flushed to disk if `sync`."""
        for handle in (self._rewards, self._decisions):
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
            handle.close()


def _format_lines(conn: Connection, paths: list[str]) -> None:
    """The formatting process: batches of field tuples in, lines out; None back when done,
    or what went wrong."""
    try:
        files = _LineFiles(paths)
        try:
            while (data := conn.recv_bytes()) != _END:
                files.put(_TAGGED.load(pickle.loads(data)))
        except BaseException:
            files.close(sync=False)
            raise
        files.close(sync=True)
        conn.send(None)
    except BaseException as exc:  # reported to the parent, which raises
        conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
