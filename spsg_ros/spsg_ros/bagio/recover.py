"""What survives of an unfinished or damaged MCAP bag, and a clean copy of it.

A bag whose writer was killed has no metadata.yaml, summary or end magic, and ends
inside a record; a bag with a flipped bit has a chunk whose CRC fails. rosbags (and
``ros2 bag``) refuse both whole, although every complete chunk is readable.
:func:`recover_messages` streams the MCAP files record by record
(:class:`spsg_ros.datasets.mcap_stream.McapStream`) and yields every complete message;
:func:`recover_bag` (``spsg-ros bag recover IN OUT``) writes them into a new bag through
:class:`~spsg_ros.bagio.writer.BagWriter` (chunk CRCs, metadata.yaml), keeping each
topic's type definition, type hash and QoS, and says per topic what it kept and what it
skipped and why (chunks lost to a CRC mismatch with their time range, messages whose
channel definition was lost, the truncated tail).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from ..datasets.base import DatasetError
from ..datasets.mcap_stream import LostChunk, McapChannel, McapMessage, McapStream, StreamReport
from ..datasets.rosbag import file_order, typestore_of

log = logging.getLogger(__name__)


class RecoverError(DatasetError):
    """Nothing can be recovered from the input, or the input is not an MCAP bag."""


@dataclass
class RecoveryReport:
    """What :func:`recover_bag` kept and skipped."""

    source: Path
    out: Optional[Path] = None
    files: list[StreamReport] = field(default_factory=list)
    kept: Counter = field(default_factory=Counter)  # topic -> messages written
    #: reason -> messages skipped (counted where the reason allows: a truncated tail's
    #: messages cannot be counted, see ``truncated_bytes``)
    skipped: Counter = field(default_factory=Counter)
    lost_chunks: list[tuple[str, LostChunk]] = field(default_factory=list)  # (file, chunk)

    @property
    def messages_kept(self) -> int:
        return sum(self.kept.values())

    @property
    def messages_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def truncated_bytes(self) -> int:
        return sum(r.truncated_bytes for r in self.files)

    def lines(self) -> list[str]:
        """The report as printed by ``spsg-ros bag recover``."""
        files = ", ".join(r.path.name for r in self.files)
        target = f" into {self.out}" if self.out is not None else ""
        lines = [f"kept {self.messages_kept} messages from {self.source} ({files}){target}"]
        lines += [f"  {topic}: {count} messages" for topic, count in sorted(self.kept.items())]
        tail = " (and those of the truncated tail, uncounted)" if self.truncated_bytes else ""
        lines.append(f"skipped {self.messages_skipped} messages{tail}")
        lines += [f"  {count}: {reason}" for reason, count in sorted(self.skipped.items())]
        for name, chunk in self.lost_chunks:
            lines.append(f"  {name}: {chunk.describe()}")
        for report in self.files:
            if report.truncated_at is not None:
                lines.append(
                    f"  {report.path.name}: truncated tail of {report.truncated_bytes} bytes "
                    f"(from byte {report.truncated_at}): the messages in it are lost, "
                    f"their count is unknown"
                )
            for damage in report.damage:
                lines.append(f"  {report.path.name}: {damage}")
            if not report.complete and report.truncated_at is None:
                lines.append(f"  {report.path.name}: unfinished (no summary, footer, end magic)")
        return lines


def source_files(source: str | Path) -> list[Path]:
    """The MCAP files of a bag: a ``.mcap`` file, or those of a rosbag2 folder (in the
    order of their ``_N`` index; metadata.yaml is not needed)."""
    source = Path(source)
    if not source.exists():
        raise RecoverError(f"{source} does not exist")
    if source.is_file():
        if source.suffix != ".mcap":
            raise RecoverError(f"{source} is not an MCAP file (bag recover reads MCAP bags)")
        return [source]
    files = sorted(source.glob("*.mcap"), key=file_order)
    if not files:
        others = sorted(p.name for p in source.iterdir() if p.suffix in (".db3", ".zstd"))
        hint = (
            f" (it holds {', '.join(others)}: for sqlite3 use `ros2 bag reindex`)"
            if others
            else ""
        )
        raise RecoverError(f"{source} holds no .mcap file{hint}")
    return files


def recover_messages(
    path: str | Path, report: Optional[StreamReport] = None
) -> Iterator[McapMessage | LostChunk]:
    """Every complete message of one MCAP file in file order, and the chunks lost;
    ``report`` (a :class:`StreamReport`) counts them and the truncated tail."""
    stream = McapStream(path)
    return stream.messages(report=report)


@dataclass
class _Topic:
    """How one channel is written to the new bag (None: skipped, with the reason)."""

    msgtype: str
    msgdef: Optional[str]
    rihs01: Optional[str]
    qos: list
    encoding: str
    skip: Optional[str] = None


def _plan(channel: McapChannel, bag_types, writer_types) -> _Topic:
    from rosbags.rosbag2.metadata import parse_qos

    try:
        qos = parse_qos(channel.metadata.get("offered_qos_profiles", ""))
    except Exception:  # an unreadable QoS is left out
        qos = []
    topic = _Topic(channel.msgtype, None, None, qos, channel.message_encoding or "cdr")
    if not channel.msgtype:
        topic.skip = "channel without schema (message type unknown)"
        return topic
    if channel.schema_encoding in ("ros2msg", "ros2idl") and channel.schema_data:
        topic.msgdef = channel.schema_data.decode("utf-8", "replace")
        topic.rihs01 = channel.metadata.get("topic_type_hash")
        if not topic.rihs01 and channel.msgtype in bag_types.fielddefs:
            try:
                topic.rihs01 = bag_types.hash_rihs01(channel.msgtype)
            except Exception:
                topic.rihs01 = None
    if topic.msgdef is None or not topic.rihs01:
        topic.msgdef = topic.rihs01 = None
        if channel.msgtype not in writer_types.fielddefs:
            topic.skip = f"no usable definition of {channel.msgtype}"
    return topic


def _message_compression(source: Path, stream: McapStream) -> str:
    """``zstd`` when rosbag2 compressed each message (compression_mode: message)."""
    import yaml

    texts = []
    meta = source / "metadata.yaml" if source.is_dir() else None
    if meta is not None and meta.is_file():
        texts.append(meta.read_text(encoding="utf-8"))
    texts.append(stream.metadata.get("rosbag2", {}).get("serialized_metadata", ""))
    for text in texts:
        try:
            info = yaml.safe_load(text) or {}
        except Exception:
            continue
        info = info.get("rosbag2_bagfile_information", info)
        if str(info.get("compression_mode", "")).lower() == "message":
            return str(info.get("compression_format") or "zstd")
    return ""


def recover_bag(source: str | Path, out: str | Path, storage: str = "mcap") -> RecoveryReport:
    """Copy every complete message of the MCAP bag ``source`` into the new bag ``out``.

    ``out`` is not created when nothing can be recovered (:class:`RecoverError`).
    """
    from .writer import BagWriteError, BagWriter

    source, out = Path(source), Path(out)
    files = source_files(source)
    if out.exists():
        raise BagWriteError(f"bag {out} already exists: remove it or choose another path")
    report = RecoveryReport(source)
    writer: Optional[BagWriter] = None
    try:
        for file in files:
            stream = McapStream(file)
            compression = _message_compression(source, stream)
            file_report = StreamReport(file)
            report.files.append(file_report)
            plans: dict[int, _Topic] = {}
            bag_types = None
            for item in stream.messages(report=file_report):
                if isinstance(item, LostChunk):
                    report.lost_chunks.append((file.name, item))
                    for cid, stamps in item.stamps.items():
                        channel = stream.channels.get(cid)
                        name = channel.topic if channel is not None else f"channel {cid}"
                        report.skipped[f"{name}: in a {item.reason}"] += len(stamps)
                    continue
                channel = item.channel
                plan = plans.get(channel.id)
                if plan is None:
                    if bag_types is None or channel.msgtype not in bag_types.fielddefs:
                        bag_types = typestore_of(list(stream.channels.values()))
                    if writer is None:
                        writer = BagWriter(out, storage=storage)
                    plan = plans[channel.id] = _plan(channel, bag_types, writer.typestore)
                if plan.skip:
                    report.skipped[f"{channel.topic}: {plan.skip}"] += 1
                    continue
                data = item.data
                if compression:
                    try:
                        data = _decompress_message(compression, data)
                    except Exception as exc:
                        report.skipped[f"{channel.topic}: cannot be decompressed ({exc})"] += 1
                        continue
                writer.write_raw(
                    channel.topic,
                    plan.msgtype,
                    data,
                    item.log_time,
                    msgdef=plan.msgdef,
                    rihs01=plan.rihs01,
                    qos=plan.qos,
                    serialization_format=plan.encoding,
                )
                report.kept[channel.topic] += 1
            if file_report.unknown_channel:
                report.skipped["channel definition lost (in a lost chunk)"] += (
                    file_report.unknown_channel
                )
    finally:
        if writer is not None:
            writer.close()
            report.out = out
    if writer is not None and not report.messages_kept:
        import shutil

        shutil.rmtree(out, ignore_errors=True)  # the empty bag made here
        report.out = None
    if not report.messages_kept:
        problems = "; ".join(p for r in report.files for p in r.problems())
        raise RecoverError(
            f"nothing recoverable in {source}: no complete message"
            + (f" ({problems})" if problems else "")
        )
    return report


def _decompress_message(compression: str, data: bytes) -> bytes:
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 30)
    raise ValueError(f"unknown message compression '{compression}'")
