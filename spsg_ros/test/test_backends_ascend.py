"""The ascend backend driven through a stand-in for ais_bench's InferSession.

The stand-in implements the InferSession interface (get_inputs / get_outputs
descriptors with name, shape, datatype, size; infer with mode and
custom_sizes; summary or sumary; free_resource) and executes the same ONNX
model through onnxruntime, while checking what a real NPU session would reject:
feeds in the model's declared order (it shuffles that order), the declared
dtypes, static shapes, mode, gear shapes and custom_sizes. A real-NPU test runs
only where ais_bench and OM files are present.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from spsg_ros.backends import BackendUnavailable, create_backend  # noqa: E402
from spsg_ros.backends.ascend import AscendBackend, ascend_device_id, numpy_dtype  # noqa: E402
from spsg_ros.export import atc  # noqa: E402
from spsg_ros.networks import contract  # noqa: E402
from spsg_ros.backends.static_superglue import select_slots, superglue_feeds, unpad_log_assignment  # noqa: E402,E501
from spsg_ros.features.extractor import SuperPointExtractor  # noqa: E402
from spsg_ros.matching.superglue_matcher import SuperGlueMatcher  # noqa: E402

from conftest import textured_image  # noqa: E402

SG_CONFIG = {"sinkhorn_iterations": 20}
SP_CONFIG = {"max_keypoints": 200}
H, W = 240, 320


# ---------------------------------------------------------------------------
# models: the exporter's ONNX files (spsg_ros.networks.onnx_export)
# ---------------------------------------------------------------------------


def _export_superpoint(weights: Path, path: Path, size: tuple[int, int] | None) -> Path:
    from spsg_ros.networks.onnx_export import export_superpoint

    h, w = size if size is not None else (None, None)
    return export_superpoint(path, weights, height=h, width=w).path


def _export_superglue(weights: Path, path: Path, k: int | None) -> Path:
    from spsg_ros.networks.onnx_export import export_superglue

    return export_superglue(path, weights, SG_CONFIG, num_slots=k).path


@pytest.fixture(scope="module")
def weights(comparable_weights):
    return comparable_weights


@pytest.fixture(scope="module")
def models(weights, tmp_path_factory):
    """ONNX models (each with an .om placeholder beside it, what the stand-in 'loads')."""
    folder = tmp_path_factory.mktemp("ascend_models")
    out = {
        "sp_static": _export_superpoint(
            weights["superpoint"], folder / "superpoint_240x320.onnx", (H, W)
        ),
        "sp_dynamic": _export_superpoint(
            weights["superpoint"], folder / "superpoint_dynamic.onnx", None
        ),
        "sg_static": _export_superglue(weights["superglue"], folder / "superglue_k256.onnx", 256),
        "sg_small": _export_superglue(weights["superglue"], folder / "superglue_k64.onnx", 64),
        "sg_dynamic": _export_superglue(
            weights["superglue"], folder / "superglue_dynamic.onnx", None
        ),
    }
    return out


def om_for(onnx_path: Path, folder: Path, soc: str | None = None, **atc_options) -> Path:
    """An .om placeholder for ``onnx_path`` in ``folder`` with the sidecar the
    export/ATC step leaves beside it (the ATC plan's for dynamic models)."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(onnx_path, folder / onnx_path.name)
    meta = contract.read_sidecar(onnx_path)
    if soc is None:
        om = folder / (onnx_path.stem + ".om")
        contract.sidecar_path(om).write_text(contract.sidecar_path(onnx_path).read_text())
    else:
        plan = atc.atc_plans(folder / onnx_path.name, meta, [soc], **atc_options)[0]
        atc.write_om_sidecars([plan], meta)
        om = plan.om_path
    om.write_bytes(b"placeholder: the stand-in session runs " + onnx_path.name.encode())
    (folder / (om.stem + ".source")).write_text(str(folder / onnx_path.name))
    return om


# ---------------------------------------------------------------------------
# the stand-in InferSession
# ---------------------------------------------------------------------------


class AclDtype:
    """Like aclruntime's pybind enum ``dtype``: str() 'dtype.float16', .name 'float16'."""

    def __init__(self, name):
        self.name = name

    def __str__(self):
        return f"dtype.{self.name}"


class TensorDesc:
    def __init__(self, name, shape, datatype, size):
        self.name, self.shape, self.datatype, self.size = name, shape, datatype, size
        self.realsize, self.format = size, 0


class DeviceTensor:
    """An output left on the device (older releases without out_array)."""

    def __init__(self, array):
        self._array, self.on_host = array, False

    def to_host(self):
        self.on_host = True

    def __array__(self, dtype=None, copy=None):
        assert self.on_host, "read a device tensor without to_host()"
        return self._array if dtype is None else self._array.astype(dtype)


class StandinSession:
    """InferSession of a recent msit/ais_bench release (summary, out_array, free_resource)."""

    instances: list["StandinSession"] = []

    def __init__(
        self,
        device_id,
        model_path,
        *,
        input_dtype="float32",
        output_dtype="float32",
        gears=None,
        dymshape=False,
        dtype_style="enum",
        shuffle_seed=3,
        slow=False,
    ):
        self.device_id = device_id
        self.model_path = model_path
        source = Path(model_path).with_suffix(".source")
        self.onnx = (
            source.read_text() if source.is_file() else str(Path(model_path).with_suffix(".onnx"))
        )
        self.ort = ort.InferenceSession(self.onnx, providers=["CPUExecutionProvider"])
        self.gears = gears
        self.dymshape = dymshape
        self.slow = slow
        self.freed = False
        self.calls: list[dict] = []
        self._dims_state = None
        style = {"enum": AclDtype, "str": lambda n: f"dtype.{n}", "numpy": np.dtype}[dtype_style]
        self.in_dtype, self.out_dtype = np.dtype(input_dtype), np.dtype(output_dtype)
        inputs = []
        for i in self.ort.get_inputs():
            shape = [d if isinstance(d, int) else -1 for d in i.shape]
            size = int(np.prod(shape)) * self.in_dtype.itemsize if all(d > 0 for d in shape) else 0
            inputs.append(TensorDesc(i.name, shape, style(self.in_dtype.name), size))
        order = np.random.default_rng(shuffle_seed).permutation(len(inputs))
        if len(inputs) > 1 and np.all(order == np.arange(len(inputs))):
            order = order[::-1]
        self.inputs = [inputs[j] for j in order]  # the model's own (shuffled) input order
        self.outputs = []
        for o in self.ort.get_outputs():
            shape = [d if isinstance(d, int) else -1 for d in o.shape]
            size = (
                int(np.prod(shape)) * self.out_dtype.itemsize if all(d > 0 for d in shape) else 0
            )
            if gears:  # dymdims: sized for the largest gear
                size = self._max_output_elements(o.name) * self.out_dtype.itemsize
            self.outputs.append(TensorDesc(o.name, shape, style(self.out_dtype.name), size))
        StandinSession.instances.append(self)

    def _max_output_elements(self, name):
        best = 0
        for gear in self.gears:
            feeds = {n: np.zeros(s, np.float32) for n, s in gear.items()}
            if "mask0" in feeds:
                feeds["mask0"][:] = 1
                feeds["mask1"][:] = 1
            outs = self.ort.run([name], feeds)
            best = max(best, outs[0].size)
        return best

    def get_inputs(self):
        return self.inputs

    def get_outputs(self):
        return self.outputs

    def _check(self, feeds, mode, custom_sizes):
        assert not self.freed, "infer after free_resource"
        if len(feeds) != len(self.inputs):
            raise RuntimeError(
                f"input datas and intensors nums not matched ({len(feeds)} vs {len(self.inputs)})"
            )
        for desc, feed in zip(self.inputs, feeds):
            if not isinstance(feed, np.ndarray) or feed.dtype != self.in_dtype:
                raise RuntimeError(
                    f"{desc.name}: got {getattr(feed, 'dtype', type(feed))}, the model "
                    f"takes {self.in_dtype}"
                )
            if feed.ndim != len(desc.shape) or any(
                d > 0 and d != a for d, a in zip(desc.shape, feed.shape)
            ):
                raise RuntimeError(f"{desc.name}: shape {feed.shape} vs declared {desc.shape}")
        dynamic = any(d < 0 for desc in self.inputs for d in desc.shape)
        expected_mode = "dymdims" if self.gears else "dymshape" if dynamic else "static"
        if mode != expected_mode:
            raise RuntimeError(f"mode {mode} on a {expected_mode} model")
        if self.gears:
            shapes = {d.name: list(f.shape) for d, f in zip(self.inputs, feeds)}
            if not any(all(list(g[n]) == shapes[n] for n in g) for g in self.gears):
                raise RuntimeError(f"shapes {shapes} are not one of the model's gears")
        if mode == "dymshape":
            if not isinstance(custom_sizes, list) or len(custom_sizes) != len(self.outputs):
                raise RuntimeError(f"custom_sizes {custom_sizes!r}: one size per output needed")

    def infer(self, feeds, mode="static", custom_sizes=100000, out_array=True):
        return self._infer(feeds, mode, custom_sizes, out_array)

    def _infer(self, feeds, mode, custom_sizes, out_array):
        self._check(feeds, mode, custom_sizes)
        shapes = tuple(f.shape for f in feeds)
        self._dims_state = shapes  # set_dynamic_dims / set_dynamic_shape: session state
        if self.slow:
            time.sleep(0.01)
        if self._dims_state != shapes:
            raise RuntimeError("dynamic shape changed by another thread between set-shape and run")
        named = {d.name: f.astype(np.float32) for d, f in zip(self.inputs, feeds)}
        outs = self.ort.run([o.name for o in self.outputs], named)
        self.calls.append(
            {
                "mode": mode,
                "custom_sizes": custom_sizes,
                "order": [d.name for d in self.inputs],
                "dtypes": [f.dtype for f in feeds],
                "shapes": [f.shape for f in feeds],
            }
        )
        results = []
        for desc, out in zip(self.outputs, outs):
            out = out.astype(self.out_dtype)
            if mode == "dymshape" and custom_sizes[self.outputs.index(desc)] < out.nbytes:
                raise RuntimeError(
                    f"custom size {custom_sizes} too small for {desc.name} ({out.nbytes} bytes)"
                )
            if self.gears:  # the buffer of the largest gear, the result in its prefix
                buffer = np.zeros(desc.size // self.out_dtype.itemsize, self.out_dtype)
                buffer[: out.size] = out.reshape(-1)
                out = buffer
            results.append(out if out_array else DeviceTensor(out))
        return results

    def summary(self):
        return {"exec_time_list": [0.1] * len(self.calls)}

    def free_resource(self):
        self.freed = True


class OldStandinSession(StandinSession):
    """An older ais_bench: infer() without out_array returning device tensors,
    sumary() instead of summary(), no free_resource."""

    def infer(self, feeds, mode="static", custom_sizes=100000):
        return self._infer(feeds, mode, custom_sizes, out_array=False)

    summary = property()  # absent (AttributeError on access)

    def sumary(self):
        return {"exec_time_list": [0.2] * len(self.calls)}

    free_resource = property()


class RunOnlySession(StandinSession):
    """A session without infer(): the caller sets the dynamic shape, then runs
    (the aclruntime-level sequence that the adapter's lock protects)."""

    infer = property()

    def set_staticbatch(self):
        self._pending = ("static", None)

    def set_dynamic_dims(self, dims: str):
        self._pending = ("dymdims", dims)

    def set_dynamic_shape(self, shape: str):
        self._pending = ("dymshape", shape)

    def set_custom_outsize(self, sizes):
        self._sizes = sizes

    def run(self, feeds, out_array=False):
        mode, dims = getattr(self, "_pending", ("static", None))
        if dims is not None:
            expected = ";".join(
                f"{d.name}:{','.join(str(x) for x in f.shape)}" for d, f in zip(self.inputs, feeds)
            )
            assert dims == expected, (dims, expected)
        return self._infer(feeds, mode, getattr(self, "_sizes", 100000), out_array)


def factory(cls=StandinSession, **options):
    created = []

    def make(device_id, model_path):
        session = cls(device_id, model_path, **options)
        created.append(session)
        return session

    make.created = created
    return make


@pytest.fixture(scope="module")
def torch_backend(weights):
    return create_backend(
        "torch",
        superpoint_weights=weights["superpoint"],
        superglue_weights=weights["superglue"],
        superpoint_config=SP_CONFIG,
        superglue_config=SG_CONFIG,
        host_postprocess=True,
    )


@pytest.fixture(scope="module")
def images():
    image0 = textured_image(H, W, seed=5)
    return image0, np.roll(image0, (3, 5), axis=(0, 1))


def extract(backend, image):
    return SuperPointExtractor(backend, SP_CONFIG)(image)


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------


def test_superpoint_static_parity_and_custom_sizes(models, torch_backend, images, tmp_path):
    om = om_for(models["sp_static"], tmp_path)
    make = factory()
    with AscendBackend(
        superpoint_model=om, session_factory=make, superpoint_config=SP_CONFIG, device="npu:1"
    ) as backend:
        assert backend.superpoint_om.mode == "static"
        for image in images:
            ours, ref = extract(backend, image), extract(torch_backend, image)
            assert len(ours) > 20
            np.testing.assert_array_equal(ours.keypoints, ref.keypoints)
            np.testing.assert_allclose(ours.scores, ref.scores, atol=1e-5)
            np.testing.assert_allclose(ours.descriptors, ref.descriptors, atol=1e-4)
        session = make.created[0]
        assert session.device_id == 1 and session.model_path == str(om)
        call = session.calls[-1]
        assert call["mode"] == "static"
        # custom_sizes: each output's byte size as the model declares it
        assert call["custom_sizes"] == [
            65 * (H // 8) * (W // 8) * 4,
            256 * (H // 8) * (W // 8) * 4,
        ]
        assert backend.describe()["device"] == "npu:1"
    assert session.freed


def test_superglue_feed_order_and_match_parity(models, torch_backend, images, tmp_path):
    om = om_for(models["sg_static"], tmp_path)
    make = factory(shuffle_seed=7)
    backend = AscendBackend(superglue_model=om, session_factory=make, superglue_config=SG_CONFIG)
    f0, f1 = (extract(torch_backend, image) for image in images)
    assert 0 < len(f0) <= 256 and 0 < len(f1) <= 256
    ours = SuperGlueMatcher(backend, SG_CONFIG)(f0, f1)
    ref = SuperGlueMatcher(torch_backend, SG_CONFIG)(f0, f1)
    np.testing.assert_array_equal(ours.matches0, ref.matches0)
    np.testing.assert_array_equal(ours.matches1, ref.matches1)
    np.testing.assert_allclose(ours.scores0, ref.scores0, atol=1e-4)
    assert (ours.matches0 >= 0).sum() > 50
    session = make.created[0]
    declared = [d.name for d in session.get_inputs()]
    assert declared != list(contract.SUPERGLUE_INPUTS)  # the stand-in shuffled the order
    assert session.calls[-1]["order"] == declared
    # exactly what onnxruntime gives for the contract feeds: nothing lost in the adapter
    la = backend.superglue_log_assignment(f0, f1)
    assert la.shape == (len(f0) + 1, len(f1) + 1)
    feeds, _, _ = superglue_feeds(f0, f1, 256)
    direct = ort.InferenceSession(str(models["sg_static"])).run(None, feeds)[0]
    np.testing.assert_array_equal(la, unpad_log_assignment(direct, len(f0), len(f1)))
    backend.close()


def test_superglue_more_keypoints_than_slots(models, torch_backend, images, tmp_path):
    om = om_for(models["sg_small"], tmp_path)
    backend = AscendBackend(
        superglue_model=om, session_factory=factory(), superglue_config=SG_CONFIG
    )
    f0, f1 = (extract(torch_backend, image) for image in images)
    assert len(f0) > 64 and len(f1) > 64
    ours = SuperGlueMatcher(backend, SG_CONFIG)(f0, f1)
    keep0, keep1 = select_slots(f0.scores, 64), select_slots(f1.scores, 64)
    ref = SuperGlueMatcher(torch_backend, SG_CONFIG)(f0.subset(keep0), f1.subset(keep1))
    expected0 = np.full(len(f0), -1)
    expected0[keep0] = np.where(ref.matches0 >= 0, keep1[np.maximum(ref.matches0, 0)], -1)
    np.testing.assert_array_equal(ours.matches0, expected0)
    dropped = np.setdiff1d(np.arange(len(f0)), keep0)
    assert np.all(ours.matches0[dropped] == -1) and np.all(ours.scores0[dropped] == 0)
    backend.close()


@pytest.mark.parametrize("dtype_style", ["enum", "str", "numpy"])
def test_declared_float16_inputs_get_casts(models, torch_backend, images, tmp_path, dtype_style):
    om = om_for(models["sp_static"], tmp_path)
    make = factory(input_dtype="float16", output_dtype="float16", dtype_style=dtype_style)
    backend = AscendBackend(superpoint_model=om, session_factory=make, superpoint_config=SP_CONFIG)
    image = images[0][None, None].astype(np.float32) / 255
    semi, desc = backend.superpoint_dense(image)
    assert semi.dtype == np.float32 and desc.dtype == np.float32
    assert make.created[0].calls[-1]["dtypes"] == [np.float16]
    ref_semi, _ = torch_backend.superpoint_dense(image)
    np.testing.assert_allclose(semi, ref_semi, atol=0.05 * np.abs(ref_semi).max())
    backend.close()

    sg_make = factory(input_dtype="float16", dtype_style=dtype_style)
    sg = AscendBackend(
        superglue_model=om_for(models["sg_static"], tmp_path / "sg"),
        session_factory=sg_make,
        superglue_config=SG_CONFIG,
    )
    f0, f1 = (extract(torch_backend, im) for im in images)
    sg.superglue(f0, f1, 0.2)
    assert set(sg_make.created[0].calls[-1]["dtypes"]) == {np.dtype(np.float16)}
    sg.close()


def test_older_release_shims(models, torch_backend, images, tmp_path):
    om_sp = om_for(models["sp_static"], tmp_path)
    om_sg = om_for(models["sg_static"], tmp_path)
    make = factory(OldStandinSession)
    backend = AscendBackend(
        superpoint_model=om_sp,
        superglue_model=om_sg,
        session_factory=make,
        superpoint_config=SP_CONFIG,
        superglue_config=SG_CONFIG,
    )
    assert not backend.superpoint_om.session.infer_takes_out_array
    f0, f1 = (extract(backend, image) for image in images)
    r0 = extract(torch_backend, images[0])
    np.testing.assert_array_equal(f0.keypoints, r0.keypoints)
    ours = backend.superglue(f0, f1, 0.2)
    ref = torch_backend.superglue(f0, f1, 0.2)
    np.testing.assert_array_equal(ours.matches0, ref.matches0)
    summary = backend.summary()
    assert summary["superpoint"]["exec_time_list"] == [0.2, 0.2]  # through sumary()
    backend.close()  # no free_resource in this release: nothing to call, no error
    backend.close()


def test_sessions_without_infer(models, torch_backend, images, tmp_path):
    om = om_for(models["sp_dynamic"], tmp_path, "Ascend310P3", shape_ranges=True)
    make = factory(RunOnlySession, dymshape=True)
    backend = AscendBackend(superpoint_model=om, session_factory=make, superpoint_config=SP_CONFIG)
    assert not backend.superpoint_om.session.has_infer
    np.testing.assert_array_equal(
        extract(backend, images[0]).keypoints, extract(torch_backend, images[0]).keypoints
    )
    assert make.created[0]._sizes == [65 * (H // 8) * (W // 8) * 4, 256 * (H // 8) * (W // 8) * 4]
    backend.close()


def test_new_release_summary_and_close(models, tmp_path):
    make = factory()
    backend = AscendBackend(
        superpoint_model=om_for(models["sp_static"], tmp_path), session_factory=make
    )
    backend.superpoint_dense(np.zeros((1, 1, H, W), np.float32))
    assert backend.summary()["superpoint"]["exec_time_list"] == [0.1]
    backend.close()
    assert make.created[0].freed
    backend.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        backend.superpoint_dense(np.zeros((1, 1, H, W), np.float32))


def test_dymdims_gears_from_the_atc_sidecar(models, torch_backend, images, tmp_path):
    sizes = [(120, 160), (H, W)]
    om_sp = om_for(models["sp_dynamic"], tmp_path, "Ascend310", image_sizes=sizes)
    om_sg = om_for(models["sg_dynamic"], tmp_path, "Ascend310B1", k_gears=[64, 128, 256])
    sp_meta = contract.read_sidecar(om_sp)
    gears_sp = sp_meta["om"]["gears"]
    gears_sg = contract.read_sidecar(om_sg)["om"]["gears"]
    sp_make, sg_make = factory(gears=gears_sp), factory(gears=gears_sg)
    backend = AscendBackend(
        superpoint_model=om_sp, session_factory=sp_make, superpoint_config=SP_CONFIG
    )
    sg_backend = AscendBackend(
        superglue_model=om_sg, session_factory=sg_make, superglue_config=SG_CONFIG
    )
    assert backend.superpoint_om.mode == "dymdims" and sg_backend.superglue_om.mode == "dymdims"
    f0, ref0 = extract(backend, images[0]), extract(torch_backend, images[0])
    np.testing.assert_array_equal(
        f0.keypoints, ref0.keypoints
    )  # output trimmed from the max-gear buffer
    small = images[0][:120, :160]
    np.testing.assert_array_equal(
        extract(backend, small).keypoints, extract(torch_backend, small).keypoints
    )
    with pytest.raises(ValueError, match="gears"):
        extract(backend, images[0][:200, :320])
    assert (
        sp_make.created[0].calls[0]["custom_sizes"][0] == 65 * (H // 8) * (W // 8) * 4
    )  # max gear
    # SuperGlue: keypoints padded to the smallest K gear that holds both sets
    f1 = extract(torch_backend, images[1])
    sub0, sub1 = f0.subset(np.arange(100)), f1.subset(np.arange(90))
    ours = sg_backend.superglue(sub0, sub1, 0.2)
    ref = torch_backend.superglue(sub0, sub1, 0.2)
    np.testing.assert_array_equal(ours.matches0, ref.matches0)
    session = sg_make.created[0]
    assert session.calls[-1]["shapes"][[d.name for d in session.inputs].index("mask0")] == (1, 128)
    backend.close()
    sg_backend.close()


def test_dymshape_custom_sizes_from_expected_outputs(models, torch_backend, images, tmp_path):
    om = om_for(models["sp_dynamic"], tmp_path, "Ascend310P3", shape_ranges=True)
    assert contract.read_sidecar(om)["om"]["mode"] == "dymshape"
    make = factory(dymshape=True)
    backend = AscendBackend(superpoint_model=om, session_factory=make, superpoint_config=SP_CONFIG)
    ours = extract(backend, images[0])
    np.testing.assert_array_equal(ours.keypoints, extract(torch_backend, images[0]).keypoints)
    call = make.created[0].calls[-1]
    assert call["mode"] == "dymshape"
    assert call["custom_sizes"] == [65 * (H // 8) * (W // 8) * 4, 256 * (H // 8) * (W // 8) * 4]
    # a dynamic-K SuperGlue under dymshape is fed the exact keypoints
    sg_make = factory(dymshape=True)
    sg = AscendBackend(
        superglue_model=om_for(
            models["sg_dynamic"], tmp_path / "sg", "Ascend310P3", shape_ranges=True
        ),
        session_factory=sg_make,
        superglue_config=SG_CONFIG,
    )
    f0, f1 = extract(torch_backend, images[0]), extract(torch_backend, images[1])
    np.testing.assert_array_equal(
        sg.superglue(f0, f1, 0.2).matches0, torch_backend.superglue(f0, f1, 0.2).matches0
    )
    la_call = sg_make.created[0].calls[-1]
    assert la_call["custom_sizes"] == [(len(f0) + 1) * (len(f1) + 1) * 4]
    backend.close()
    sg.close()


def test_lock_serialises_set_shape_and_infer(models, tmp_path):
    om = om_for(models["sp_dynamic"], tmp_path, "Ascend310", image_sizes=[(120, 160), (H, W)])
    gears = contract.read_sidecar(om)["om"]["gears"]
    backend = AscendBackend(superpoint_model=om, session_factory=factory(gears=gears, slow=True))
    errors = []

    def work(h, w):
        try:
            for _ in range(5):
                backend.superpoint_dense(np.zeros((1, 1, h, w), np.float32))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=size) for size in [(120, 160), (H, W)] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    backend.close()


def test_errors(models, tmp_path, monkeypatch):
    om_sp = om_for(models["sp_static"], tmp_path / "a")
    om_sg = om_for(models["sg_static"], tmp_path / "b")
    # ais_bench missing: says what to install
    monkeypatch.setitem(sys.modules, "ais_bench", None)
    with pytest.raises(BackendUnavailable, match="ais_bench.*CANN"):
        create_backend("ascend", superpoint_model=om_sp)
    # no model configured
    with pytest.raises(BackendUnavailable, match="OM models"):
        AscendBackend(session_factory=factory())
    # model file missing
    with pytest.raises(FileNotFoundError, match="not found"):
        AscendBackend(superpoint_model=tmp_path / "nope.om", session_factory=factory())
    # a SuperGlue OM given as the SuperPoint model (sidecar says so)
    with pytest.raises(contract.ModelContractError, match="superglue"):
        AscendBackend(superpoint_model=om_sg, session_factory=factory())
    # ... and without a sidecar, the inputs tell
    contract.sidecar_path(om_sg).unlink()
    with pytest.raises(contract.ModelContractError, match="single input 'image'"):
        AscendBackend(superpoint_model=om_sg, session_factory=factory())
    # the runtime configuration does not fit the model
    with pytest.raises(contract.ModelContractError, match="descriptor_dim"):
        AscendBackend(
            superpoint_model=om_sp,
            session_factory=factory(),
            superpoint_config={"descriptor_dim": 128},
        )
    # the session cannot load the model (wrong chip, device busy, ...)

    def broken(device_id, path):
        raise RuntimeError("acl error 507011")

    with pytest.raises(BackendUnavailable, match="could not load.*soc_version"):
        AscendBackend(superpoint_model=om_sp, session_factory=broken)
    # wrong image size for a static model
    backend = AscendBackend(superpoint_model=om_sp, session_factory=factory())
    with pytest.raises(ValueError, match="static SuperPoint for 320x240"):
        backend.superpoint_dense(np.zeros((1, 1, 480, 640), np.float32))
    # feeds that do not fit the declared inputs
    with pytest.raises(ValueError, match="missing"):
        backend.superpoint_om.session.ordered_feeds({"img": np.zeros((1, 1, H, W), np.float32)})
    with pytest.raises(ValueError, match="declared"):
        backend.superpoint_om.session.ordered_feeds(
            {"image": np.zeros((1, 1, H, W + 8), np.float32)}
        )
    backend.close()
    # a dymdims model whose gears are unknown
    om_dyn = om_for(models["sp_dynamic"], tmp_path / "c")
    with pytest.raises(ValueError, match="gears are unknown"):
        AscendBackend(
            superpoint_model=om_dyn,
            session_factory=factory(gears=[{"image": [1, 1, H, W]}]),
            superpoint_mode="dymdims",
        )


def test_device_and_dtype_parsing():
    assert ascend_device_id("npu:3") == 3 and ascend_device_id("ascend:2") == 2
    assert (
        ascend_device_id("cpu") == 0
        and ascend_device_id(None, 5) == 5
        and ascend_device_id("1") == 1
    )
    with pytest.raises(BackendUnavailable):
        ascend_device_id("cuda:0")
    assert numpy_dtype(AclDtype("float16")) == np.float16
    assert (
        numpy_dtype("dtype.float32") == np.float32 and numpy_dtype(np.dtype("int64")) == np.int64
    )
    assert numpy_dtype("TENSOR_DTYPE_FLOAT16") == np.float16
    with pytest.raises(ValueError):
        numpy_dtype("complex")


@pytest.mark.hardware
def test_real_npu(tmp_path):
    """On a machine with an Ascend NPU: set SPSG_ASCEND_SUPERPOINT_OM (and
    optionally SPSG_ASCEND_SUPERGLUE_OM) to converted models."""
    try:
        import ais_bench.infer.interface  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no Ascend runtime here (ais_bench not importable: {type(exc).__name__})")
    sp = os.environ.get("SPSG_ASCEND_SUPERPOINT_OM")
    if not sp:
        pytest.skip(
            "set SPSG_ASCEND_SUPERPOINT_OM to an OM converted with the `spsg-ros export --atc` "
            "commands"
        )
    sg = os.environ.get("SPSG_ASCEND_SUPERGLUE_OM")
    with create_backend(
        "ascend",
        superpoint_model=sp,
        superglue_model=sg,
        device=os.environ.get("SPSG_ASCEND_DEVICE", "npu:0"),
    ) as backend:
        meta = contract.read_sidecar(Path(sp)) if contract.sidecar_path(Path(sp)).is_file() else {}
        w, h = meta.get("image_size") or (W, H)
        image = textured_image(h, w, seed=1)
        features = SuperPointExtractor(backend)(image)
        assert len(features) > 0
        if sg:
            matches = backend.superglue(features, features, 0.2)
            assert (matches.matches0 >= 0).mean() > 0.5
