"""Faults done to real bags written by the project's writer, and what survives them.

Bags are made from a small TartanAir-layout sequence with ``sequence_to_bag`` (chunks
of ~40 kB, so a bag holds several): chunk CRCs and ``NAME_0.mcap`` naming; truncated
at several offsets (the replay reads every complete chunk, ``bag recover`` keeps every
message of every complete chunk); a flipped byte in a chunk (its frames flagged, the rest
replayed); a writer killed with SIGKILL (everything written more than 1 s before the
kill survives); random bytes; a folder without metadata.yaml.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")
pytest.importorskip("mcap")

from mcap.reader import make_reader  # noqa: E402
from mcap.records import Chunk, DataEnd, Header, Metadata  # noqa: E402
from mcap.stream_reader import StreamReader  # noqa: E402

from spsg_ros.bagio import writer as bag_writer  # noqa: E402
from spsg_ros.bagio.convert import sequence_to_bag  # noqa: E402
from spsg_ros.bagio.recover import RecoverError, recover_bag  # noqa: E402
from spsg_ros.datasets import DatasetError, detect_kind, open_source  # noqa: E402

from test_datasets_readers import write_tartanair  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
N_FRAMES = 12
IMAGE_TOPIC = "/camera/image_raw"
T_START = 5_000_000_000
DT = 100_000_000  # TartanAir stamps: 10 Hz


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of ~40 kB: a 12-frame bag of 160x120 images holds several."""
    monkeypatch.setattr(bag_writer, "CHUNK_BYTES", 40_000)


def make_bag(tmp_path: Path, name: str = "run", n: int = N_FRAMES, storage="mcap") -> Path:
    root = tmp_path / f"{name}_src"
    if not root.exists():
        write_tartanair(root, n=n, stereo=False)
    report = sequence_to_bag(
        open_source(root), tmp_path / name, progress=False, start_time_ns=T_START, storage=storage
    )
    assert report.frames_written == n
    return tmp_path / name


def chunk_table(mcap_file: Path) -> list[dict]:
    """Offset, end and per-topic log times of each chunk (mcap's own reader, CRCs checked)."""
    with mcap_file.open("rb") as f:
        reader = make_reader(f, validate_crcs=True)
        summary = reader.get_summary()
        topics = {cid: ch.topic for cid, ch in summary.channels.items()}
        table = []
        for index in sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset):
            f.seek(index.chunk_start_offset)
            per_topic: dict[str, list[int]] = {}
            for cid, offset in index.message_index_offsets.items():
                f.seek(offset)
                head = f.read(9)
                length = int.from_bytes(head[1:], "little")
                body = f.read(length)
                size = int.from_bytes(body[2:6], "little")
                stamps = [
                    int.from_bytes(body[6 + 16 * k : 14 + 16 * k], "little")
                    for k in range(size // 16)
                ]
                per_topic[topics[cid]] = stamps
            table.append(
                {
                    "start": index.chunk_start_offset,
                    "end": index.chunk_start_offset + index.chunk_length,
                    "topics": per_topic,
                    "times": (index.message_start_time, index.message_end_time),
                }
            )
    return table


def _expected(table: list[dict], cut: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for chunk in table:
        if chunk["end"] <= cut:
            for topic, stamps in chunk["topics"].items():
                counts[topic] = counts.get(topic, 0) + len(stamps)
    return counts


def _crash_copy(bag: Path, dest: Path, cut: int) -> Path:
    """What a killed writer leaves: no metadata.yaml, the MCAP file cut at ``cut``."""
    dest.mkdir()
    src = bag / f"{bag.name}_0.mcap"
    (dest / f"{dest.name}_0.mcap").write_bytes(src.read_bytes()[:cut])
    return dest


# ----------------------------------------------------------------------------- the writer


def test_writer_chunk_crcs_and_ros2_bag_record_naming(tmp_path, small_chunks):
    bag = make_bag(tmp_path)
    assert sorted(p.name for p in bag.iterdir()) == ["metadata.yaml", "run_0.mcap"]
    import yaml

    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 9 and info["storage_identifier"] == "mcap"
    assert (
        info["relative_file_paths"] == ["run_0.mcap"] and info["files"][0]["path"] == "run_0.mcap"
    )
    topics = {t["topic_metadata"]["name"]: t for t in info["topics_with_message_count"]}
    assert topics[IMAGE_TOPIC]["message_count"] == N_FRAMES
    assert topics[IMAGE_TOPIC]["topic_metadata"]["type_description_hash"].startswith("RIHS01_")
    chunks, data_end, metadata, header = [], None, {}, None
    with (bag / "run_0.mcap").open("rb") as f:
        for record in StreamReader(f, emit_chunks=True, validate_crcs=True).records:
            if isinstance(record, Chunk):
                chunks.append(record)
            elif isinstance(record, DataEnd):
                data_end = record
            elif isinstance(record, Metadata):
                metadata[record.name] = record.metadata
            elif isinstance(record, Header):
                header = record
    assert len(chunks) >= 4 and all(c.uncompressed_crc != 0 for c in chunks)
    assert data_end is not None and data_end.data_section_crc != 0
    assert header.profile == "ros2"
    # the rosbag2 metadata record, as rosbag2 (and rosbags) write it
    serialized = yaml.safe_load(metadata["rosbag2"]["serialized_metadata"])
    assert serialized["relative_file_paths"] == ["run_0.mcap"] and serialized["version"] == 9
    # channel metadata: QoS and type hash
    with (bag / "run_0.mcap").open("rb") as f:
        channels = make_reader(f).get_summary().channels
    image = next(c for c in channels.values() if c.topic == IMAGE_TOPIC)
    assert "offered_qos_profiles" in image.metadata
    assert (
        image.metadata["topic_type_hash"]
        == topics[IMAGE_TOPIC]["topic_metadata"]["type_description_hash"]
    )
    # sqlite3 is named the same way
    db3 = make_bag(tmp_path, "lite", storage="sqlite3")
    assert sorted(p.name for p in db3.iterdir()) == ["lite_0.db3", "metadata.yaml"]
    assert len(list(open_source(db3))) == N_FRAMES


def test_writer_closes_chunks_by_age(tmp_path):
    """A chunk is closed and flushed at the first write after its oldest message is
    flush_seconds old; until then the messages stay in memory."""
    from spsg_ros.messages.conversions import MessageTypes, array_to_image_msg

    path = tmp_path / "aged"
    sizes = []
    with bag_writer.BagWriter(path, flush_seconds=0.5) as bag:
        types = MessageTypes.from_typestore(bag.typestore)
        for i in range(6):
            image = np.full((8, 8), i, np.uint8)
            bag.write("/cam/image_raw", array_to_image_msg(types, image, "mono8", i, "c"), i)
            sizes.append((path / "aged_0.mcap").stat().st_size)
            if i == 2:
                time.sleep(0.6)
    assert sizes[0] == sizes[1] == sizes[2] < sizes[3] == sizes[4] == sizes[5]
    chunks = chunk_table(path / "aged_0.mcap")
    assert [len(c["topics"]["/cam/image_raw"]) for c in chunks] == [4, 2]


# ----------------------------------------------------------------------------- truncation


@pytest.mark.parametrize("where", ["50%", "90%", "no footer", "no summary"])
def test_truncated_bag_replays_and_recovers_every_complete_chunk(
    tmp_path, small_chunks, caplog, where
):
    bag = make_bag(tmp_path)
    mcap_file = bag / "run_0.mcap"
    size = mcap_file.stat().st_size
    table = chunk_table(mcap_file)
    with mcap_file.open("rb") as f:
        summary_start = int.from_bytes(f.read()[-8 - 20 : -8 - 12], "little")
    cut = {
        "50%": size // 2,
        "90%": size * 9 // 10,
        "no footer": size - 8 - 29,
        "no summary": summary_start,
    }[where]
    expected = _expected(table, cut)
    assert 0 < expected[IMAGE_TOPIC] <= N_FRAMES
    crashed = _crash_copy(bag, tmp_path / "crashed", cut)
    assert detect_kind(crashed) == "bag"
    with caplog.at_level(logging.WARNING):
        seq = open_source(crashed)
        frames = list(seq)
    image_stamps = sorted(s for c in table if c["end"] <= cut for s in c["topics"][IMAGE_TOPIC])
    assert [f.stamp_ns for f in frames] == image_stamps and all(f.ok for f in frames)
    assert frames[0].camera_info is not None and frames[-1].gt_pose is not None
    original = list(open_source(bag))
    np.testing.assert_array_equal(frames[-1].image, original[len(frames) - 1].image)
    np.testing.assert_allclose(frames[-1].gt_pose, original[len(frames) - 1].gt_pose)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "unfinished" in warning and "spsg-ros bag recover" in warning
    assert f"read {sum(expected.values())} complete messages" in warning
    # bag recover: every message of every complete chunk, per topic
    report = recover_bag(crashed, tmp_path / "fixed")
    assert dict(report.kept) == expected
    assert (tmp_path / "fixed" / "metadata.yaml").is_file()
    assert [f.stamp_ns for f in open_source(tmp_path / "fixed")] == image_stamps
    if where in ("50%", "90%"):
        assert report.truncated_bytes > 0


def test_bag_recover_cli(tmp_path, small_chunks, capsys):
    from rosbags.highlevel import AnyReader

    from spsg_ros.cli.main import main

    bag = make_bag(tmp_path)
    size = (bag / "run_0.mcap").stat().st_size
    expected = _expected(chunk_table(bag / "run_0.mcap"), size // 2)
    crashed = _crash_copy(bag, tmp_path / "crashed", size // 2)
    # rosbags refuses the unfinished bag whole
    with pytest.raises(Exception, match="metadata"):
        with AnyReader([crashed]):
            pass
    assert main(["bag", "recover", str(crashed), str(tmp_path / "fixed")]) == 0
    out = capsys.readouterr().out
    assert f"kept {sum(expected.values())} messages" in out
    assert f"{IMAGE_TOPIC}: {expected[IMAGE_TOPIC]} messages" in out
    assert "truncated tail of" in out
    # the copy is a complete bag rosbags reads, with CRCs
    with AnyReader([tmp_path / "fixed"]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert sum(1 for _ in reader.messages()) == sum(expected.values())
    assert counts == expected
    # a .mcap file as input works as well; an existing output is refused
    mcap_file = crashed / "crashed_0.mcap"
    assert main(["bag", "recover", str(mcap_file), str(tmp_path / "fixed2")]) == 0
    capsys.readouterr()
    assert main(["bag", "recover", str(crashed), str(tmp_path / "fixed")]) == 2
    assert "already exists" in capsys.readouterr().err
    # nothing recoverable: exit 2, no output bag
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "empty_0.mcap").write_bytes(mcap_file.read_bytes()[:30])
    assert main(["bag", "recover", str(empty), str(tmp_path / "fixed3")]) == 2
    assert "nothing recoverable" in capsys.readouterr().err
    assert not (tmp_path / "fixed3").exists()


# ----------------------------------------------------------------------------- bit flips


def test_flipped_byte_in_a_chunk_flags_its_frames(tmp_path, small_chunks, caplog):
    bag = make_bag(tmp_path)
    mcap_file = bag / "run_0.mcap"
    table = chunk_table(mcap_file)
    victim = table[1]
    data = bytearray(mcap_file.read_bytes())
    data[(victim["start"] + victim["end"]) // 2] ^= 0x04
    mcap_file.write_bytes(bytes(data))
    lost_images = victim["topics"][IMAGE_TOPIC]
    assert lost_images
    with caplog.at_level(logging.WARNING):
        frames = list(open_source(bag))
    assert [f.stamp_ns for f in frames] == [T_START + i * DT for i in range(N_FRAMES)]
    flagged = [f for f in frames if not f.ok]
    assert [f.stamp_ns for f in flagged] == lost_images
    assert all("corrupt chunk (CRC mismatch)" in f.error and f.image is None for f in flagged)
    good = [f for f in frames if f.ok]
    assert len(good) == N_FRAMES - len(lost_images)
    # ground truth of the chunk is lost too: the frames of the others keep theirs
    lost_gt = set(victim["topics"]["/ground_truth/pose"])
    assert all((f.gt_pose is None) == (f.stamp_ns in lost_gt) for f in good)
    original = {f.stamp_ns: f for f in open_source(make_bag(tmp_path, "clean"))}
    for frame in good:
        np.testing.assert_array_equal(frame.image, original[frame.stamp_ns].image)
    warnings = [r.getMessage() for r in caplog.records if "CRC mismatch" in r.getMessage()]
    assert warnings and f"log time {victim['times'][0]}..{victim['times'][1]}" in warnings[0]
    # reported once per chunk, though ground truth and images both read it
    assert len(warnings) == 1
    # bag recover keeps the rest and says what it skipped
    report = recover_bag(bag, tmp_path / "fixed")
    total = {t: sum(len(c["topics"].get(t, [])) for c in table) for t in victim["topics"]}
    assert report.kept[IMAGE_TOPIC] == total[IMAGE_TOPIC] - len(lost_images)
    assert report.messages_skipped == sum(len(s) for s in victim["topics"].values())
    assert any("CRC mismatch" in line for line in report.lines())


def test_damaged_record_header_is_skipped_to_the_next_chunk(tmp_path, small_chunks, caplog):
    bag = make_bag(tmp_path)
    mcap_file = bag / "run_0.mcap"
    table = chunk_table(mcap_file)
    data = bytearray(mcap_file.read_bytes())
    start = table[1]["start"]
    data[start + 1 : start + 9] = b"\xff" * 8  # the chunk's record length
    mcap_file.write_bytes(bytes(data))
    (bag / "metadata.yaml").unlink()
    report = recover_bag(bag, tmp_path / "fixed")
    expected = sum(len(s) for i, c in enumerate(table) if i != 1 for s in c["topics"].values())
    assert report.messages_kept == expected
    assert any("skipped to the next chunk" in line for line in report.lines())
    frames = list(open_source(bag))
    lost = set(table[1]["topics"][IMAGE_TOPIC])
    assert [f.stamp_ns for f in frames] == [
        T_START + i * DT for i in range(N_FRAMES) if T_START + i * DT not in lost
    ]


# ----------------------------------------------------------------------------- SIGKILL

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from spsg_ros.bagio.writer import BagWriter
    from spsg_ros.messages.conversions import MessageTypes, array_to_image_msg

    bag = BagWriter(sys.argv[1])
    types = MessageTypes.from_typestore(bag.typestore)
    rng = np.random.default_rng(0)
    for i in range(10_000):
        stamp = {t0} + i * {dt}
        image = (rng.random((120, 160)) * 255).astype(np.uint8)
        bag.write("/cam/image_raw", array_to_image_msg(types, image, "mono8", stamp, "cam"), stamp)
        print(i, flush=True)
        time.sleep(0.1)
    """
).format(t0=T_START, dt=DT)


def test_writer_killed_with_sigkill_leaves_what_it_wrote_a_second_before(tmp_path, caplog):
    bag = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO / "spsg_ros"))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(bag)], stdout=subprocess.PIPE, text=True, env=env
    )
    received: dict[int, float] = {}  # frame -> when its write was reported
    try:
        deadline = time.monotonic() + 60
        while len(received) < 33 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            received[int(line)] = time.monotonic()
        killed_at = time.monotonic()
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
        child.stdout.close()
    assert len(received) == 33, "the child did not write 33 frames"
    assert not (bag / "metadata.yaml").exists()
    old = [i for i, t in received.items() if t < killed_at - 1.0]
    assert len(old) >= 15
    with caplog.at_level(logging.WARNING):
        frames = list(open_source(bag))
    stamps = {f.stamp_ns for f in frames}
    assert all(f.ok for f in frames)
    assert {T_START + i * DT for i in old} <= stamps
    assert any("unfinished" in r.getMessage() for r in caplog.records)
    report = recover_bag(bag, tmp_path / "fixed")
    assert report.kept["/cam/image_raw"] == len(frames) >= len(old)
    print(
        f"SIGKILL after {len(received)} frames written: {len(frames)} recovered, "
        f"{len(old)} written more than 1 s before the kill"
    )


# ----------------------------------------------------------------------------- not bags


def test_random_bytes_are_a_damaged_bag_not_a_crash(tmp_path):
    from spsg_ros.cli.main import main

    rng = np.random.default_rng(1)
    plain = tmp_path / "plain.mcap"
    plain.write_bytes(rng.bytes(5000))
    with pytest.raises(DatasetError, match=r"not a valid MCAP bag.*damaged at byte 0"):
        open_source(plain)
    magic = tmp_path / "magic.mcap"
    magic.write_bytes(b"\x89MCAP0\r\n" + rng.bytes(5000))
    with pytest.raises(DatasetError, match=r"not a valid bag or damaged at byte 8"):
        open_source(magic)
    # random bytes behind a real header and a real footer, metadata.yaml present
    bag = make_bag(tmp_path)
    data = bytearray((bag / "run_0.mcap").read_bytes())
    for seed in range(8):
        noisy = np.random.default_rng(seed)
        data[40:-37] = noisy.bytes(len(data) - 77)
        (bag / "run_0.mcap").write_bytes(bytes(data))
        with pytest.raises(DatasetError, match=r"damaged at byte \d+"):
            open_source(bag)
    assert main(["bag", "recover", str(magic), str(tmp_path / "out")]) == 2
    with pytest.raises(RecoverError, match="nothing recoverable"):
        recover_bag(bag, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_folder_without_metadata_yaml(tmp_path, caplog):
    bag = make_bag(tmp_path)
    (bag / "metadata.yaml").unlink()
    assert detect_kind(bag) == "bag"
    with caplog.at_level(logging.WARNING):
        frames = list(open_source(bag))
    assert len(frames) == N_FRAMES and all(f.ok for f in frames)
    assert any("no metadata.yaml" in r.getMessage() for r in caplog.records)
    # sqlite3 cannot be read without it: the message says how to fix it
    lite = make_bag(tmp_path, "lite", storage="sqlite3")
    (lite / "metadata.yaml").unlink()
    assert detect_kind(lite) == "bag"
    with pytest.raises(DatasetError, match=r"no metadata\.yaml.*ros2 bag reindex"):
        open_source(lite)
    # a folder with nothing of a bag is still not a bag
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="cannot tell what"):
        detect_kind(other)
    shutil.rmtree(other)
