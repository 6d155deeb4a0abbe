"""``spsg-ros models``: get and inspect weight files."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="download or inspect weights")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    d = msub.add_parser(
        "download", help="fetch the upstream SuperPoint/SuperGlue (or LightGlue) weights"
    )
    d.add_argument(
        "names",
        nargs="*",
        help="superpoint, indoor, outdoor (default: these three); lightglue "
        "(= superpoint_lightglue), disk_lightglue (cvg/LightGlue releases, Apache-2.0; "
        "sha256 recorded on the first download, later downloads must match it)",
    )
    d.add_argument(
        "--weights-dir", type=Path, default=None, help="target folder (default: spsg_ros/models)"
    )
    d.add_argument(
        "--base-url", default=None, help="mirror URL (https:// or file://) holding the files"
    )
    d.add_argument(
        "--force", action="store_true", help="download again even if a valid file is present"
    )
    d.set_defaults(func=run_download)
    c = msub.add_parser("check", help="load weight files and report whether they fit the networks")
    c.add_argument("--superpoint-weights", default=None)
    c.add_argument("--superglue-weights", default=None)
    c.add_argument("--lightglue-weights", default=None)
    c.add_argument("--weights-dir", type=Path, default=None)
    c.set_defaults(func=run_check)
    i = msub.add_parser(
        "import",
        help="convert SuperPoint weights (pytorch-superpoint checkpoint, OpenVINO IR) "
        "to an upstream-layout .pth",
        description="Convert SuperPoint weights to the upstream state-dict layout: a "
        "pytorch-superpoint "
        "training checkpoint (.pth.tar with model_state_dict; BatchNorm layers are folded "
        "into the convolutions) or an OpenVINO IR SuperPoint (.xml + .bin).",
    )
    i.add_argument(
        "source", type=Path, help="checkpoint (.pth/.pth.tar) or IR (.xml, its .bin beside it)"
    )
    i.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="target .pth (default: <weights-dir>/<source name>.pth)",
    )
    i.add_argument("--weights-dir", type=Path, default=None, help="folder for the default output")
    i.add_argument(
        "--kind",
        choices=("auto", "checkpoint", "openvino-ir"),
        default="auto",
        help="source format (default: from the file name)",
    )
    i.add_argument(
        "--bn-eps", type=float, default=1e-5, help="BatchNorm epsilon (default: %(default)s)"
    )
    i.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load a checkpoint that holds pickled objects (runs code from the file)",
    )
    i.add_argument("--force", action="store_true", help="overwrite the output file")
    i.set_defaults(func=run_import)


def run_download(args: argparse.Namespace) -> int:
    from ..networks.weights import (
        LICENSE_NOTICE,
        LIGHTGLUE_BASE_URL,
        LIGHTGLUE_LICENSE_NOTICE,
        LIGHTGLUE_WEIGHTS,
        UPSTREAM_BASE_URL,
        UPSTREAM_WEIGHTS,
        WeightError,
        download_lightglue,
        download_weights,
        sha256,
    )

    names = list(dict.fromkeys(args.names))
    unknown = [n for n in names if n not in UPSTREAM_WEIGHTS and n not in LIGHTGLUE_WEIGHTS]
    if unknown:
        known = ", ".join([*UPSTREAM_WEIGHTS, *LIGHTGLUE_WEIGHTS])
        raise WeightError(f"unknown weights {', '.join(unknown)} (choose from {known})")
    magic_leap = [n for n in names if n in UPSTREAM_WEIGHTS]
    lightglue = [n for n in names if n in LIGHTGLUE_WEIGHTS]
    if magic_leap or not names:
        print(LICENSE_NOTICE)
        paths = download_weights(
            magic_leap or None,
            args.weights_dir,
            args.base_url or UPSTREAM_BASE_URL,
            force=args.force,
        )
        for name, path in paths.items():
            print(f"{name}: {path} (git blob id verified, sha256 {sha256(path)})")
    if lightglue:
        print(LIGHTGLUE_LICENSE_NOTICE)
        fetched = download_lightglue(
            lightglue, args.weights_dir, args.base_url or LIGHTGLUE_BASE_URL, force=args.force
        )
        for name, got in fetched.items():
            trust = (
                f"first use: sha256 recorded in {got.record}; no upstream digest to check it "
                "against"
                if got.first_use
                else f"matches the sha256 recorded in {got.record}"
            )
            print(f"{name}: {got.path} (sha256 {got.sha256}; {trust})")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from ..networks.weights import (
        load_lightglue,
        load_superglue,
        load_superpoint,
        resolve_weights,
    )

    given = (args.superpoint_weights, args.superglue_weights, args.lightglue_weights)
    if all(w is None for w in given):
        args.superpoint_weights, args.superglue_weights = "superpoint", "indoor"
    if args.superpoint_weights is not None:
        load_superpoint(args.superpoint_weights, weights_dir=args.weights_dir)
        print(
            "superpoint: "
            f"{resolve_weights(args.superpoint_weights, 'superpoint', args.weights_dir)} OK"
        )
    if args.superglue_weights is not None:
        load_superglue(args.superglue_weights, weights_dir=args.weights_dir)
        print(
            "superglue: "
            f"{resolve_weights(args.superglue_weights, 'superglue', args.weights_dir)} OK"
        )
    if args.lightglue_weights is not None:
        model = load_lightglue(args.lightglue_weights, weights_dir=args.weights_dir)
        path = resolve_weights(args.lightglue_weights, "lightglue", args.weights_dir)
        print(
            f"lightglue: {path} OK ({model.config['input_dim']}-D descriptors, "
            f"{model.config['n_layers']} layers)"
        )
    return 0


def run_import(args: argparse.Namespace) -> int:
    import numpy as np

    from ..networks.convert import import_superpoint, max_dense_difference, save_state_dict
    from ..networks.weights import default_weights_dir, sha256

    result = import_superpoint(args.source, args.kind, args.bn_eps, args.trust_pickle)
    output = args.output
    if output is None:
        stem = args.source.name.split(".")[0] if args.source.suffix else args.source.name
        output = (args.weights_dir or default_weights_dir()) / f"{stem}.pth"
    path = save_state_dict(result, output, overwrite=args.force)
    print(f"{result.kind}: {result.source}")
    for note in result.notes:
        print(f"  {note}")
    print(
        f"superpoint weights (descriptor_dim {result.descriptor_dim}): {path} (sha256 "
        f"{sha256(path)})"
    )
    if result.kind == "openvino-ir":
        try:
            import openvino as ov
        except ImportError:
            print("  (install the openvino package to compare the converted weights with the IR)")
            return 0
        compiled = ov.Core().compile_model(
            str(result.source), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        )

        def forward(image):
            out = compiled({compiled.inputs[0]: image})
            semi = [v for v in out.values() if v.shape[1] == 65]
            desc = [v for v in out.values() if v.shape[1] != 65]
            return semi[0], desc[0]

        image = np.random.default_rng(0).random((1, 1, 240, 320), dtype=np.float32)
        d_semi, d_desc = max_dense_difference(result.state_dict, forward, image)
        print(
            f"  check against the IR (OpenVINO CPU, f32, 240x320): max |semi| diff {d_semi:.2e}, "
            f"max |normalised desc| diff {d_desc:.2e}"
        )
    return 0
