"""ATC command generation: parse the command lines and check them against the sidecars."""

from __future__ import annotations

import json
import shlex

import pytest

from spsg_ros.export import atc
from spsg_ros.networks import contract


def sidecar(network: str, **kw) -> dict:
    if network == "superpoint":
        h, w = kw.get("size", (None, None))
        return {
            "format": contract.SIDECAR_FORMAT,
            "version": 1,
            "network": "superpoint",
            "config": {"descriptor_dim": 256},
            "image_size": None if h is None else [w, h],
            **contract.superpoint_io(h, w, 256),
        }
    k = kw.get("k")
    return {
        "format": contract.SIDECAR_FORMAT,
        "version": 1,
        "network": "superglue",
        "num_slots": k,
        "config": {"descriptor_dim": 256},
        **contract.superglue_io(k, 256),
    }


def parse(command: str) -> tuple[str, dict[str, str]]:
    argv = shlex.split(command)
    flags = {}
    for arg in argv[1:]:
        assert arg.startswith("--") and "=" in arg, arg
        key, value = arg[2:].split("=", 1)
        assert key not in flags, f"--{key} given twice"
        flags[key] = value
    return argv[0], flags


def parse_shapes(value: str) -> dict[str, list[str]]:
    out = {}
    for item in value.split(";"):
        name, dims = item.split(":")
        out[name] = dims.split(",")
    return out


def expected_dims(shape, k=None):
    return [str(d) if isinstance(d, int) else (str(k) if k is not None else "-1") for d in shape]


def test_static_superpoint(tmp_path):
    meta = sidecar("superpoint", size=(480, 640))
    onnx = tmp_path / "superpoint_480x640.onnx"
    commands = atc.atc_commands(onnx, meta)
    assert len(commands) == 3
    for soc, command in zip(atc.SOC_VERSIONS, commands):
        exe, flags = parse(command)
        assert exe == "atc"
        assert flags["model"] == str(onnx) and flags["framework"] == "5"
        assert flags["output"] == str(tmp_path / f"superpoint_480x640_{soc}")
        assert flags["soc_version"] == soc and flags["input_format"] == "NCHW"
        assert parse_shapes(flags["input_shape"]) == {"image": ["1", "1", "480", "640"]}
        assert meta["inputs"][0]["shape"] == [1, 1, 480, 640]
        assert "dynamic_dims" not in flags
        assert flags["precision_mode"] == atc.DEFAULT_PRECISION_MODE and flags["log"] == "error"
        assert '--input_shape="image:1,1,480,640"' in command  # as ATC's documentation writes it


def test_static_superglue_shapes_match_sidecar(tmp_path):
    meta = sidecar("superglue", k=1024)
    for command in atc.atc_commands(
        tmp_path / "superglue_k1024.onnx", meta, output_dir=tmp_path / "om"
    ):
        _, flags = parse(command)
        assert flags["input_format"] == "ND"
        shapes = parse_shapes(flags["input_shape"])
        assert (
            list(shapes) == [e["name"] for e in meta["inputs"]] == list(contract.SUPERGLUE_INPUTS)
        )
        for entry in meta["inputs"]:
            assert shapes[entry["name"]] == expected_dims(entry["shape"])
        assert shapes["descriptors0"] == ["1", "256", "1024"] and shapes["image_size1"] == [
            "1",
            "2",
        ]
        assert flags["output"].startswith(str(tmp_path / "om" / "superglue_k1024_Ascend"))


def test_dynamic_superglue_gears(tmp_path):
    meta = sidecar("superglue", k=None)
    gears = [512, 256, 1024]
    plans = atc.atc_plans(tmp_path / "superglue_dynamic.onnx", meta, k_gears=gears)
    for plan in plans:
        _, flags = parse(plan.command)
        assert plan.mode == "dymdims" and flags["input_format"] == "ND"
        shapes = parse_shapes(flags["input_shape"])
        minus = [(n, i) for n, dims in shapes.items() for i, d in enumerate(dims) if d == "-1"]
        assert len(minus) == 8  # K in keypoints/scores/descriptors/mask of both images
        for entry in meta["inputs"]:
            assert shapes[entry["name"]] == expected_dims(entry["shape"])
        rows = flags["dynamic_dims"].split(";")
        assert [int(r.split(",")[0]) for r in rows] == sorted(gears)
        for row, k in zip(rows, sorted(gears)):
            assert row.split(",") == [str(k)] * len(minus)
        # the recorded gears are the full input shapes of each gear, consistent with the sidecar
        assert [g["keypoints0"] for g in plan.gears] == [[1, k, 2] for k in sorted(gears)]
        assert plan.gears[0]["descriptors1"] == [1, 256, 256]
        assert any("4 per gear" in note for note in plan.notes)
        assert "input_shape_range" not in flags and "~" not in flags["input_shape"]


def test_shape_ranges_only_where_the_chip_has_them(tmp_path):
    meta = sidecar("superglue", k=None)
    plans = {
        p.soc_version: p
        for p in atc.atc_plans(tmp_path / "sg.onnx", meta, shape_ranges=True, k_gears=[256, 2048])
    }
    assert plans["Ascend310P3"].mode == "dymshape"
    assert "1~2048" in parse(plans["Ascend310P3"].command)[1]["input_shape"]
    assert "dynamic_dims" not in parse(plans["Ascend310P3"].command)[1]
    for soc in ("Ascend310", "Ascend310B1"):  # no shape ranges there: gears instead
        _, flags = parse(plans[soc].command)
        assert plans[soc].mode == "dymdims" and "~" not in flags["input_shape"]
        assert flags["dynamic_dims"] == ";".join(",".join([str(k)] * 8) for k in (256, 2048))
    sp = sidecar("superpoint")
    plans = {
        p.soc_version: p
        for p in atc.atc_plans(
            tmp_path / "sp.onnx", sp, shape_ranges=True, image_sizes=[(240, 320), (480, 640)]
        )
    }
    assert parse_shapes(parse(plans["Ascend310P3"].command)[1]["input_shape"]) == {
        "image": ["1", "1", "240~480", "320~640"]
    }
    assert parse(plans["Ascend310"].command)[1]["dynamic_dims"] == "240,320;480,640"


def test_dynamic_superpoint_sizes():
    sp = sidecar("superpoint")
    (one,) = atc.atc_plans("sp.onnx", sp, ["Ascend310"], image_sizes=[(480, 640)])
    assert one.mode == "static" and parse_shapes(parse(one.command)[1]["input_shape"])[
        "image"
    ] == ["1", "1", "480", "640"]
    (gears,) = atc.atc_plans("sp.onnx", sp, ["Ascend310B1"], image_sizes=[(480, 640), (240, 320)])
    _, flags = parse(gears.command)
    assert gears.mode == "dymdims" and flags["input_format"] == "ND"
    assert flags["input_shape"] == "image:1,1,-1,-1" and flags["dynamic_dims"] == "480,640;240,320"
    assert gears.gears == [{"image": [1, 1, 480, 640]}, {"image": [1, 1, 240, 320]}]
    with pytest.raises(atc.AtcError, match="image sizes"):
        atc.atc_commands("sp.onnx", sp, ["Ascend310"])
    with pytest.raises(atc.AtcError, match="multiples of 8"):
        atc.atc_commands("sp.onnx", sp, ["Ascend310"], image_sizes=[(481, 640)])
    with pytest.raises(atc.AtcError, match="static for 480x640"):
        atc.atc_commands(
            "sp.onnx", sidecar("superpoint", size=(480, 640)), image_sizes=[(240, 320)]
        )
    # a static model among several exported sizes: its own size only
    (plan,) = atc.atc_plans(
        "sp.onnx",
        sidecar("superpoint", size=(480, 640)),
        ["Ascend310"],
        image_sizes=[(240, 320), (480, 640)],
    )
    assert plan.mode == "static" and plan.input_shape == {"image": [1, 1, 480, 640]}


def test_options_and_errors(tmp_path):
    meta = sidecar("superpoint", size=(240, 320))
    (command,) = atc.atc_commands(
        "m.onnx",
        meta,
        ["Ascend310P3"],
        precision_mode="force_fp16",
        log_level="info",
        atc="/opt/atc",
        extra_args=["--op_select_implmode=high_precision"],
    )
    exe, flags = parse(command)
    assert exe == "/opt/atc" and flags["precision_mode"] == "force_fp16" and flags["log"] == "info"
    assert flags["op_select_implmode"] == "high_precision"
    with pytest.raises(atc.AtcError, match="precision_mode"):
        atc.atc_commands("m.onnx", meta, precision_mode="fp8")
    with pytest.raises(atc.AtcError, match="log level"):
        atc.atc_commands("m.onnx", meta, log_level="loud")
    with pytest.raises(atc.AtcError, match="soc_version"):
        atc.atc_commands("m.onnx", meta, ["Ascend 310"])
    with pytest.raises(atc.AtcError, match="network"):
        atc.atc_commands("m.onnx", {"network": "resnet", "inputs": []})
    (plan,) = atc.atc_plans("m.onnx", meta, ["Ascend310"], precision_mode="must_keep_origin_dtype")
    assert any("no fp32" in note for note in plan.notes)
    # paths with spaces survive the shell
    (command,) = atc.atc_commands(tmp_path / "my models" / "sp.onnx", meta, ["Ascend310"])
    assert parse(command)[1]["model"] == str(tmp_path / "my models" / "sp.onnx")


def test_reads_the_sidecar_and_writes_om_sidecars(tmp_path):
    onnx = tmp_path / "superglue_dynamic.onnx"
    onnx.write_bytes(b"")
    meta = sidecar("superglue", k=None)
    contract.write_sidecar(onnx, {k: v for k, v in meta.items() if k not in ("format", "version")})
    plans = atc.atc_plans(
        onnx, None, ["Ascend310B1"], k_gears=[128, 256]
    )  # sidecar read from disk
    exported_meta = {
        k: v for k, v in contract.read_sidecar(onnx).items() if k not in ("format", "version")
    }
    (path,) = atc.write_om_sidecars(plans, exported_meta)  # as the exporter's ExportedModel.meta
    assert (
        path == tmp_path / "superglue_dynamic_Ascend310B1.json"
        and plans[0].om_path.suffix == ".om"
    )
    om_meta = contract.read_sidecar(plans[0].om_path, "superglue")  # the ascend backend reads this
    assert om_meta["om"]["mode"] == "dymdims" and om_meta["om"]["soc_version"] == "Ascend310B1"
    assert [g["mask0"] for g in om_meta["om"]["gears"]] == [[1, 128], [1, 256]]
    assert om_meta["om"]["command"] == plans[0].command
    text = atc.format_plans(plans)
    assert text.splitlines()[0].startswith("# superglue -> ") and plans[0].command in text
    assert json.loads(path.read_text())["inputs"] == meta["inputs"]


def test_commands_for_exported_models(generated_weights, tmp_path):
    """Against the exporter's real sidecars (and ONNX input names)."""
    pytest.importorskip("torch")
    onnx_mod = pytest.importorskip("onnx")
    from spsg_ros.networks.onnx_export import export_superpoint

    model = export_superpoint(
        tmp_path / "superpoint_240x320.onnx",
        generated_weights["superpoint"],
        height=240,
        width=320,
    )
    graph_inputs = {
        i.name: [d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in onnx_mod.load(str(model.path)).graph.input
    }
    for command in atc.atc_commands(model.path):
        shapes = parse_shapes(parse(command)[1]["input_shape"])
        assert {n: [int(d) for d in dims] for n, dims in shapes.items()} == graph_inputs
