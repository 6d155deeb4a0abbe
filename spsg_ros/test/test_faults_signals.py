"""Fault injection: stop signals, dead pipes and SIGKILL during real `spsg-ros replay` and
`spsg-ros to-bag` runs (subprocesses on the real 17-frame sequence); each test asserts what
survives: exit code, a bag rosbags and the mcap reader open, a complete CSV, the summary with
``"interrupted": true``, the plots."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("rosbags")
pytest.importorskip("matplotlib")
pytest.importorskip("mcap")

FRAMES = 15
#: small and fast: the faults matter here, not the figures
FAST = ["--backend", "torch", "--resize", "320", "--max-keypoints", "256", "--matcher", "nn"]


@pytest.fixture(scope="module")
def sequence(shared_dir) -> Path:
    folder = shared_dir / "data" / "freiburg_sequence"
    if len(list(folder.glob("*.png"))) < FRAMES:
        pytest.skip(f"{folder} holds fewer than {FRAMES} frames")
    return folder


def _weights(shared_weights) -> list[str]:
    return ["--superpoint-weights", str(shared_weights["superpoint"])]


def _spsg(args, stdout, stderr, cwd) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "spsg_ros.cli.main", *map(str, args)],
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=env,
    )


def _csv_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _wait_for_rows(proc, csv_path: Path, count: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(_csv_rows(csv_path)) >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before frame {count}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"frame {count} not reached in {timeout} s")


def _bag_topic_counts(bag: Path) -> dict[str, int]:
    """Message counts per topic through rosbags (metadata.yaml, summary) ..."""
    from rosbags.highlevel import AnyReader

    counts: dict[str, int] = {}
    with AnyReader([bag]) as reader:
        for conn, _, _ in reader.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
    return counts


def _mcap_counts(bag: Path) -> dict[str, int]:
    """... and through the mcap reader (summary section, chunk CRCs checked)."""
    from mcap.reader import make_reader

    files = sorted(bag.glob("*.mcap"))
    assert len(files) == 1, files
    counts: dict[str, int] = {}
    with open(files[0], "rb") as f:
        reader = make_reader(f, validate_crcs=True)
        assert reader.get_summary() is not None, "no summary section: the bag was not closed"
        for _, channel, _ in reader.iter_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
    return counts


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stop_signal_during_replay_leaves_readable_outputs(
    signum, sequence, shared_weights, tmp_path
):
    at = random.Random(int(signum)).randint(2, 6)  # a different frame for each signal
    out = tmp_path / "out"
    log = open(tmp_path / "log.txt", "w")
    args = ["replay", sequence, "--out", out, "--max-frames", FRAMES, "--no-progress"]
    proc = _spsg(args + FAST + _weights(shared_weights), log, subprocess.STDOUT, tmp_path)
    _wait_for_rows(proc, out / "metrics.csv", at)
    proc.send_signal(signum)
    assert proc.wait(timeout=120) == 128 + int(signum)
    log.close()
    text = (tmp_path / "log.txt").read_text()
    assert "Traceback" not in text, text

    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["signal"] == signal.Signals(signum).name
    rows = _csv_rows(out / "metrics.csv")
    assert at <= len(rows) < FRAMES and summary["frames"] == len(rows)
    assert [int(r["index"]) for r in rows] == list(range(len(rows)))  # complete rows only
    for counts in (_bag_topic_counts(out / "results"), _mcap_counts(out / "results")):
        assert counts["/frontend/keypoints"] == len(rows)
        assert counts["/frontend/frontend_status"] == len(rows)
    assert {"metrics.png", "latency.png", "trajectory.png"} <= {
        p.name for p in (out / "plots").iterdir()
    }


def _dead_pipe() -> int:
    """A pipe whose reader is gone: writing to it fails with EPIPE (like `| tee` after ^C)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    return write_end


@pytest.mark.parametrize("dead", ["stdout", "both"])
def test_ctrl_c_with_the_output_pipe_gone_still_writes_everything(
    dead, sequence, shared_weights, tmp_path
):
    """`replay ... 2>&1 | tee log` (both dead) and `2>err | tee` (stdout dead) after Ctrl-C."""
    out = tmp_path / "out"
    pipe = _dead_pipe()
    err = open(tmp_path / "err.txt", "w")
    args = ["replay", sequence, "--out", out, "--max-frames", FRAMES, "--no-progress"]
    proc = _spsg(
        args + FAST + _weights(shared_weights),
        pipe,
        pipe if dead == "both" else err,
        tmp_path,
    )
    os.close(pipe)
    _wait_for_rows(proc, out / "metrics.csv", 3)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    err.close()
    if dead == "stdout":
        text = (tmp_path / "err.txt").read_text()
        assert "BrokenPipeError" not in text and "Traceback" not in text, text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["signal"] == "SIGINT"
    assert summary["frames"] == len(_csv_rows(out / "metrics.csv")) >= 3
    assert (out / "plots" / "trajectory.png").is_file()
    assert _mcap_counts(out / "results")["/frontend/keypoints"] == summary["frames"]


def test_sigterm_during_to_bag_closes_the_bag(sequence, tmp_path):
    from spsg_ros.datasets import open_source

    # slow the source down so the signal lands half-way: one frame per 0.2 s
    script = tmp_path / "slow_to_bag.py"
    script.write_text(
        "import sys, time\n"
        "from spsg_ros.datasets.folder import FolderSequence\n"
        "load = FolderSequence._load\n"
        "def slow(self, position, index):\n"
        "    time.sleep(0.2)\n"
        "    print('frame', index, flush=True)\n"
        "    return load(self, position, index)\n"
        "FolderSequence._load = slow\n"
        "from spsg_ros.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    bag = tmp_path / "seq"
    proc = subprocess.Popen(
        [sys.executable, str(script), "to-bag", str(sequence), str(bag), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    for line in proc.stdout:
        if line.startswith("frame 5"):
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 143, rest
    assert "Traceback" not in rest and "interrupted (SIGTERM)" in rest, rest
    counts = _bag_topic_counts(bag)
    assert 5 <= counts["/camera/image_raw"] < len(open_source(sequence))
    assert _mcap_counts(bag)["/camera/image_raw"] == counts["/camera/image_raw"]
    assert (bag / "seq_0.mcap").is_file()  # named as ros2 bag record names it


def test_sigkill_loses_at_most_the_last_second(sequence, shared_weights, tmp_path):
    """After SIGKILL the bag has no index; `bag recover` keeps every frame but the last second."""
    out = tmp_path / "out"
    args = ["replay", sequence, "--out", out, "--max-frames", FRAMES, "--no-progress"]
    proc = _spsg(
        args + FAST + _weights(shared_weights),
        subprocess.DEVNULL,
        subprocess.DEVNULL,
        tmp_path,
    )
    _wait_for_rows(proc, out / "metrics.csv", 6)
    time.sleep(1.5)  # frames written more than a second ago must survive
    killed_at = time.monotonic()
    rows_before = len(_csv_rows(out / "metrics.csv"))
    proc.kill()
    proc.wait(timeout=30)
    rows = _csv_rows(out / "metrics.csv")
    assert not (out / "summary.json").exists()
    recovered = tmp_path / "recovered"
    from spsg_ros.cli.main import main

    assert main(["bag", "recover", str(out / "results"), str(recovered)]) == 0
    counts = _bag_topic_counts(recovered)
    frame_ms = [float(r["total_ms"]) for r in rows]
    # frames finished in the last second before the kill may be lost, no more
    recent, elapsed = 0, 0.0
    for ms in reversed(frame_ms):
        elapsed += ms / 1e3
        if elapsed > 1.0:
            break
        recent += 1
    assert rows_before >= 6 and time.monotonic() - killed_at < 30
    assert len(rows) - recent - 1 <= counts["/frontend/keypoints"] <= len(rows)
