"""MCAP read record by record, for unfinished and damaged files as well as complete ones.

A bag whose writer was killed (SIGKILL, power loss, full disk) has no summary, no
footer and no end magic, and ends inside a record; a bag with a flipped bit has a
chunk whose CRC does not match. :class:`McapStream` reads such files from the start:
schemas and channels, the messages of every chunk that decompresses and whose CRC
matches (CRC 0: not checked), and un-chunked messages, in file order. It stops at a
truncated tail and reports it; a chunk that fails is reported as a :class:`LostChunk`
with the time range of its header and the per-channel stamps of the message index
records that follow it; a damaged record header is skipped by searching for the next
valid chunk. A complete file's summary (schemas, channels, statistics) is read first
when its CRC checks, so a lost chunk does not take the channel definitions with it.

This module only reads the MCAP records (``mcap.records``), it knows nothing of ROS
messages; :mod:`spsg_ros.datasets.rosbag` and :mod:`spsg_ros.bagio.recover` build on it.
"""

from __future__ import annotations

import io
import mmap
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterator, Optional, Union

from .base import DatasetError

MAGIC = b"\x89MCAP0\r\n"
_HEAD = struct.Struct("<BQ")  # opcode, record length
_MESSAGE = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time
_CHUNK_TIMES = struct.Struct("<QQQI")  # start, end, uncompressed size, uncompressed CRC
_FOOTER = struct.Struct("<BQQQI")  # opcode, length, summary start, summary offset start, CRC
_FOOTER_SIZE = _FOOTER.size  # 29

OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = (
    0x01,
    0x02,
    0x03,
    0x04,
    0x05,
    0x06,
)
OP_MESSAGE_INDEX, OP_METADATA, OP_DATA_END = 0x07, 0x0C, 0x0F
_KNOWN_OPCODES = frozenset(range(0x01, 0x10))
_COMPRESSIONS = ("", "zstd", "lz4")


class McapDamaged(DatasetError):
    """The file is not an MCAP file, or is damaged where nothing can be recovered."""


@dataclass
class McapChannel:
    """A channel with its schema: the topic, the message type and its definition."""

    id: int
    topic: str
    message_encoding: str
    metadata: dict[str, str]
    schema_id: int
    msgtype: str = ""
    schema_encoding: str = ""
    schema_data: bytes = b""


@dataclass
class McapMessage:
    """One complete message, its payload still serialised."""

    channel: McapChannel
    log_time: int
    publish_time: int
    sequence: int
    data: bytes

    @property
    def topic(self) -> str:
        return self.channel.topic


@dataclass
class LostChunk:
    """A chunk whose messages cannot be trusted, with what is known of them."""

    offset: int  # byte offset of the chunk record in the file
    length: int  # bytes of the record
    start_ns: int  # message times the chunk header gives (log time)
    end_ns: int
    reason: str  # "corrupt chunk (CRC mismatch)", ...
    #: channel id -> log times of its messages, from the message index records
    #: after the chunk (empty when the file has none there)
    stamps: dict[int, list[int]] = field(default_factory=dict)

    @property
    def message_count(self) -> Optional[int]:
        """Messages the message index lists (None when there is no index)."""
        return sum(len(v) for v in self.stamps.values()) if self.stamps else None

    def describe(self) -> str:
        count = self.message_count
        held = f"{count} messages" if count is not None else "messages (no index)"
        return (
            f"{self.reason} at byte {self.offset} ({self.length} bytes, {held}, "
            f"log time {self.start_ns}..{self.end_ns} ns)"
        )


@dataclass
class StreamReport:
    """What a pass over the file found: counts of what was read and what was lost."""

    path: Path
    size: int = 0
    complete: bool = False  # footer and end magic present
    summary: bool = False  # the summary section was read (its CRC checks)
    summary_problem: Optional[str] = None
    messages: int = 0  # complete messages read
    per_channel: dict[int, int] = field(default_factory=dict)
    start_ns: Optional[int] = None
    end_ns: Optional[int] = None
    chunks: int = 0  # chunks read
    lost_chunks: list[LostChunk] = field(default_factory=list)
    unknown_channel: int = 0  # messages of a channel whose definition was lost
    truncated_at: Optional[int] = None  # offset of the first incomplete record
    truncated_bytes: int = 0
    damage: list[str] = field(default_factory=list)  # damaged record headers, skipped
    damaged_at: Optional[int] = None  # offset of the first damaged record header
    skipped_bytes: int = 0  # bytes skipped over damaged record headers
    data_crc: Optional[bool] = None  # data-section CRC matched (None: not checked)

    @property
    def lost_messages(self) -> int:
        """Messages the message index lists in the lost chunks."""
        return sum(c.message_count or 0 for c in self.lost_chunks)

    @property
    def clean(self) -> bool:
        return (
            self.complete
            and not self.lost_chunks
            and not self.damage
            and not self.unknown_channel
            and self.data_crc is not False
            and not self.summary_problem
        )

    def problems(self) -> list[str]:
        """One line for each thing that was lost, skipped or is missing."""
        lines = [f"lost chunk: {c.describe()}" for c in self.lost_chunks]
        lines += [f"damaged: {d}" for d in self.damage]
        if self.unknown_channel:
            lines.append(
                f"{self.unknown_channel} messages skipped: their channel definition was lost"
            )
        if self.truncated_at is not None:
            lines.append(
                f"truncated: the last {self.truncated_bytes} bytes (from byte "
                f"{self.truncated_at}) hold no complete record"
            )
        elif not self.complete:
            lines.append("unfinished: no summary, footer or end magic")
        if self.summary_problem:
            lines.append(self.summary_problem)
        if self.data_crc is False and not self.lost_chunks and not self.damage:
            lines.append("data section CRC mismatch (damage outside the chunks)")
        return lines


def _read_record(data: Union[bytes, memoryview], kind) -> Any:
    """Parse one record body with ``mcap.records`` (``kind.read(stream)``)."""
    from mcap.data_stream import ReadDataStream

    return kind.read(ReadDataStream(io.BytesIO(bytes(data))))


def _decompress(compression: str, data: bytes, size: int) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        import zstandard

        # the size bounds the output only when the frame does not give it (a damaged
        # header must not make us allocate gigabytes)
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=min(size, 1 << 30))
    if compression == "lz4":
        import lz4.frame

        return lz4.frame.decompress(data)
    raise ValueError(f"unknown compression '{compression}'")


def _plausible_chunk(buf, pos: int, size: int) -> bool:
    """Whether a chunk record header that makes sense starts at ``pos``."""
    if pos + 9 + _CHUNK_TIMES.size + 4 > size:
        return False
    opcode, length = _HEAD.unpack_from(buf, pos)
    if opcode != OP_CHUNK or pos + 9 + length > size:
        return False
    start, end, _, _ = _CHUNK_TIMES.unpack_from(buf, pos + 9)
    p = pos + 9 + _CHUNK_TIMES.size
    (name_len,) = struct.unpack_from("<I", buf, p)
    if name_len > 8 or p + 4 + name_len + 8 > size:
        return False
    name = bytes(buf[p + 4 : p + 4 + name_len])
    if name.decode("ascii", "replace") not in _COMPRESSIONS:
        return False
    (records_len,) = struct.unpack_from("<Q", buf, p + 4 + name_len)
    header = _CHUNK_TIMES.size + 4 + name_len + 8
    return start <= end and records_len == length - header


class McapStream:
    """Record-level reader of one MCAP file that recovers what a damaged file holds.

    ``channels`` and ``schemas`` fill in as the file is read (from the summary first for
    a complete file); :meth:`messages` yields :class:`McapMessage` and
    :class:`LostChunk` objects and fills a :class:`StreamReport`; :meth:`scan` reads the
    whole file once for the report (counts, time range, topics).
    """

    def __init__(self, path: str | Path, *, use_summary: bool = True):
        self.path = Path(path)
        try:
            self.size = self.path.stat().st_size
            with self.path.open("rb") as f:
                head = f.read(len(MAGIC))
        except OSError as exc:
            raise McapDamaged(f"cannot read {self.path}: {exc}") from exc
        if head != MAGIC:
            what = "is empty" if not head else "does not start with the MCAP magic"
            raise McapDamaged(
                f"{self.path} is not a valid MCAP bag: it {what} (damaged at byte 0)"
            )
        self.schemas: dict[int, Any] = {}
        self.channels: dict[int, McapChannel] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.statistics: Any = None
        self.profile: Optional[str] = None
        self.complete = False
        self.summary = False
        self.summary_problem: Optional[str] = None
        #: every channel is known (summary read, or the whole file scanned)
        self.channels_known = False
        if use_summary:
            self._read_summary()

    # -- the summary of a complete file
    def _read_summary(self) -> None:
        if self.size < len(MAGIC) * 2 + _FOOTER_SIZE:
            return
        with self.path.open("rb") as f:
            f.seek(self.size - len(MAGIC) - _FOOTER_SIZE)
            tail = f.read()
            if tail[-len(MAGIC) :] != MAGIC:
                return
            opcode, length, start, offsets, crc = _FOOTER.unpack_from(tail, 0)
            if opcode != OP_FOOTER or length != 20:
                return
            self.complete = True
            footer_at = self.size - len(MAGIC) - _FOOTER_SIZE
            if start == 0:
                return  # no summary section
            if not len(MAGIC) <= start <= footer_at:
                self.summary_problem = f"summary offset {start} is outside the file"
                return
            f.seek(start)
            section = f.read(footer_at - start)
        if crc and zlib.crc32(tail[: -len(MAGIC) - 4], zlib.crc32(section)) != crc:
            self.summary_problem = "summary CRC mismatch: the summary was not used"
            return
        try:
            for opcode, body in _records_in(section):
                self._take_definition(opcode, body)
                if opcode == 0x0B:  # statistics
                    from mcap.records import Statistics

                    self.statistics = _read_record(body, Statistics)
        except Exception as exc:  # a summary that does not parse is not used
            self.summary_problem = f"summary cannot be parsed ({exc}): the summary was not used"
            self.statistics = None
            return
        self.summary = True
        self.channels_known = True

    def _take_definition(self, opcode: int, body, trusted: bool = False) -> None:
        """Register a schema or channel record (other records are ignored).

        Ids are unique in a file: a record that redefines a known id differently is
        damage (garbage read as a record) and is refused with ValueError, unless the
        record is ``trusted`` (it comes from a chunk whose CRC checked): it replaces the
        definition then.
        """
        from mcap.records import Channel, Schema

        if opcode == OP_SCHEMA:
            schema = _read_record(body, Schema)
            known = self.schemas.get(schema.id)
            if known is not None and not trusted:
                if (known.name, known.encoding, bytes(known.data)) != (
                    schema.name,
                    schema.encoding,
                    bytes(schema.data),
                ):
                    raise ValueError(f"schema {schema.id} redefined differently")
                return
            self.schemas[schema.id] = schema
            for channel in self.channels.values():
                if channel.schema_id == schema.id:
                    _attach(channel, schema)
        elif opcode == OP_CHANNEL:
            record = _read_record(body, Channel)
            channel = McapChannel(
                id=record.id,
                topic=record.topic,
                message_encoding=record.message_encoding,
                metadata=dict(record.metadata),
                schema_id=record.schema_id,
            )
            known = self.channels.get(record.id)
            if known is not None and not trusted:
                if (known.topic, known.schema_id) != (channel.topic, channel.schema_id):
                    raise ValueError(f"channel {record.id} redefined differently")
                return
            if record.schema_id in self.schemas:
                _attach(channel, self.schemas[record.schema_id])
            self.channels[record.id] = channel

    # -- reading
    def scan(self) -> StreamReport:
        """Read the whole file once (payloads not kept) and report what it holds."""
        report = StreamReport(self.path)
        for _ in self.messages(topics=(), report=report):
            pass
        self.channels_known = True
        return report

    def messages(
        self,
        topics: Optional[Collection[str]] = None,
        start: Optional[int] = None,
        stop: Optional[int] = None,
        report: Optional[StreamReport] = None,
    ) -> Iterator[Union[McapMessage, LostChunk]]:
        """Messages on ``topics`` (None: all) with ``start <= log time < stop``, in file
        order (by log time within a chunk), and the chunks lost on the way.

        ``report`` (filled as the file is read) counts every message of the file, on
        any topic, in the chunks read; chunks entirely outside the time window are
        skipped unread once every channel is known.
        """
        report = report if report is not None else StreamReport(self.path)
        report.size, report.complete, report.summary = self.size, self.complete, self.summary
        report.summary_problem = self.summary_problem
        window = start is not None or stop is not None
        lo = -1 if start is None else int(start)
        hi = 1 << 64 if stop is None else int(stop)
        topics = None if topics is None else frozenset(topics)
        data_crc = zlib.crc32(MAGIC)
        crc_valid = True  # every record of the data section read in order
        pending: Optional[LostChunk] = None
        seen_chunk = False  # a chunked file has no messages outside its chunks
        with self.path.open("rb") as f, _mapped(f, self.size) as buf:
            pos = len(MAGIC)
            while pos < self.size:
                if self.size - pos < 9:
                    report.truncated_at, report.truncated_bytes = pos, self.size - pos
                    break
                opcode, length = _HEAD.unpack_from(buf, pos)
                end = pos + 9 + length
                if (
                    (opcode not in _KNOWN_OPCODES and opcode < 0x80)
                    or end > self.size
                    or (opcode == OP_MESSAGE and seen_chunk)
                ):
                    if report.damaged_at is None and (
                        opcode not in _KNOWN_OPCODES or self.complete
                    ):
                        report.damaged_at = pos
                    resume = self._resync(buf, pos + 1)
                    if resume is None:
                        if end > self.size and opcode in _KNOWN_OPCODES and not self.complete:
                            report.truncated_at, report.truncated_bytes = pos, self.size - pos
                        else:
                            report.damage.append(
                                f"invalid record (opcode 0x{opcode:02x}, length {length}) at "
                                f"byte {pos}: the {self.size - pos} bytes after it are unread"
                            )
                            report.skipped_bytes += self.size - pos
                        break
                    report.damage.append(
                        f"invalid record (opcode 0x{opcode:02x}, length {length}) at byte "
                        f"{pos}: {resume - pos} bytes skipped to the next chunk"
                    )
                    if report.damaged_at is None:
                        report.damaged_at = pos
                    report.skipped_bytes += resume - pos
                    crc_valid = False
                    pos = resume
                    continue
                if pending is not None and opcode != OP_MESSAGE_INDEX:
                    yield pending
                    pending = None
                if opcode == OP_DATA_END:
                    if crc_valid and not window:
                        (expected,) = struct.unpack_from("<I", buf, pos + 9)
                        report.data_crc = None if expected == 0 else expected == data_crc
                    break  # the summary section follows (read in __init__)
                if opcode == OP_FOOTER:
                    break
                if opcode == OP_CHUNK:
                    seen_chunk = True
                    times = _CHUNK_TIMES.unpack_from(buf, pos + 9) if length >= 28 else (0, 0)
                    if window and self.channels_known and (times[1] < lo or times[0] >= hi):
                        crc_valid = False
                        pos = end
                        continue
                    lost, found = self._read_chunk(buf, pos, length, topics, lo, hi, report)
                    if lost is not None:
                        report.lost_chunks.append(lost)
                        pending = lost
                    else:
                        report.chunks += 1
                    yield from found
                elif opcode == OP_MESSAGE_INDEX:
                    if pending is not None:
                        _add_index(pending, buf[pos + 9 : end])
                elif opcode == OP_MESSAGE:
                    try:
                        message = self._message(buf, pos + 9, length, topics, lo, hi, report)
                    except ValueError as exc:
                        report.damage.append(f"record at byte {pos}: {exc}")
                        message = None
                    if message is not None:
                        yield message
                elif opcode in (OP_SCHEMA, OP_CHANNEL):
                    try:
                        self._take_definition(opcode, buf[pos + 9 : end])
                    except Exception as exc:
                        report.damage.append(f"record at byte {pos} cannot be parsed: {exc}")
                elif opcode == OP_METADATA:
                    self._take_metadata(buf[pos + 9 : end])
                elif opcode == OP_HEADER:
                    self._take_header(buf[pos + 9 : end])
                if crc_valid and not window:
                    data_crc = zlib.crc32(buf[pos:end], data_crc)
                pos = end
            if pending is not None:
                yield pending

    def _resync(self, buf, pos: int) -> Optional[int]:
        """Offset of the next plausible chunk record at or after ``pos`` (None: none)."""
        marker = bytes([OP_CHUNK])
        while True:
            pos = buf.find(marker, pos)
            if pos < 0:
                return None
            if _plausible_chunk(buf, pos, self.size):
                return pos
            pos += 1

    def _read_chunk(self, buf, pos, length, topics, lo, hi, report):
        """(LostChunk or None, the wanted messages of the chunk sorted by log time)."""
        from mcap.records import Chunk

        body = buf[pos + 9 : pos + 9 + length]
        lost = LostChunk(pos, 9 + length, 0, 0, "")
        try:
            chunk = _read_record(body, Chunk)
        except Exception as exc:
            lost.reason = f"corrupt chunk (header cannot be parsed: {exc})"
            return lost, []
        lost.start_ns, lost.end_ns = chunk.message_start_time, chunk.message_end_time
        try:
            data = _decompress(chunk.compression, chunk.data, chunk.uncompressed_size)
        except Exception as exc:
            lost.reason = f"corrupt chunk (cannot be decompressed: {exc})"
            return lost, []
        if len(data) != chunk.uncompressed_size:
            lost.reason = (
                f"corrupt chunk (holds {len(data)} bytes, its header says "
                f"{chunk.uncompressed_size})"
            )
            return lost, []
        if chunk.uncompressed_crc and zlib.crc32(data) != chunk.uncompressed_crc:
            lost.reason = "corrupt chunk (CRC mismatch)"
            return lost, []
        found: list[McapMessage] = []
        inner = 0
        try:
            while inner < len(data):
                opcode, ilen = _HEAD.unpack_from(data, inner)
                iend = inner + 9 + ilen
                if iend > len(data):
                    raise ValueError(f"record of {ilen} bytes at byte {inner} overruns it")
                if opcode == OP_MESSAGE:
                    message = self._message(data, inner + 9, ilen, topics, lo, hi, report)
                    if message is not None:
                        found.append(message)
                elif opcode in (OP_SCHEMA, OP_CHANNEL):
                    self._take_definition(
                        opcode, data[inner + 9 : iend], trusted=bool(chunk.uncompressed_crc)
                    )
                inner = iend
        except Exception as exc:  # a chunk without CRC: its messages so far are kept
            lost.reason = f"corrupt chunk (records cannot be parsed: {exc})"
            found.sort(key=lambda m: m.log_time)
            return lost, found
        found.sort(key=lambda m: m.log_time)
        return None, found

    def _message(self, buf, at, length, topics, lo, hi, report) -> Optional[McapMessage]:
        if length < _MESSAGE.size:
            raise ValueError(f"message record of {length} bytes")
        cid, sequence, log_time, publish_time = _MESSAGE.unpack_from(buf, at)
        channel = self.channels.get(cid)
        if channel is None:
            report.unknown_channel += 1
            return None
        report.messages += 1
        report.per_channel[cid] = report.per_channel.get(cid, 0) + 1
        if report.start_ns is None or log_time < report.start_ns:
            report.start_ns = log_time
        if report.end_ns is None or log_time > report.end_ns:
            report.end_ns = log_time
        if (topics is not None and channel.topic not in topics) or not lo <= log_time < hi:
            return None
        payload = bytes(buf[at + _MESSAGE.size : at + length])
        return McapMessage(channel, log_time, publish_time, sequence, payload)

    def _take_metadata(self, body) -> None:
        from mcap.records import Metadata

        try:
            record = _read_record(body, Metadata)
            self.metadata[record.name] = dict(record.metadata)
        except Exception:  # metadata is informative only
            pass

    def _take_header(self, body) -> None:
        from mcap.records import Header

        try:
            self.profile = _read_record(body, Header).profile
        except Exception:
            pass


def _attach(channel: McapChannel, schema) -> None:
    channel.msgtype = schema.name
    channel.schema_encoding = schema.encoding
    channel.schema_data = bytes(schema.data)


def _add_index(lost: LostChunk, body) -> None:
    """Add the stamps of a message index record to a lost chunk (damaged ones: skipped)."""
    if len(body) < 6:
        return
    cid, size = struct.unpack_from("<HI", body, 0)
    if size % 16 or 6 + size > len(body):
        return
    stamps = [t for t, _ in struct.iter_unpack("<QQ", body[6 : 6 + size])]
    lost.stamps.setdefault(cid, []).extend(stamps)


def _records_in(section: bytes) -> Iterator[tuple[int, memoryview]]:
    view = memoryview(section)
    pos = 0
    while pos < len(view):
        opcode, length = _HEAD.unpack_from(view, pos)
        end = pos + 9 + length
        if end > len(view):
            raise ValueError(f"record at byte {pos} overruns the section")
        yield opcode, view[pos + 9 : end]
        pos = end


class _mapped:
    """The file as a read-only buffer (mmap; bytes for an empty file)."""

    def __init__(self, f, size: int):
        self._f, self._size, self._map = f, size, None

    def __enter__(self):
        if self._size == 0:
            return b""
        self._map = mmap.mmap(self._f.fileno(), self._size, access=mmap.ACCESS_READ)
        return self._map

    def __exit__(self, *exc):
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a view is still alive; the GC closes it later
                pass
