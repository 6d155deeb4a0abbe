"""``spsg-ros models``: get and inspect weight files."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="download or inspect weights")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    d = msub.add_parser("download", help="fetch the upstream SuperPoint/SuperGlue weights")
    d.add_argument("names", nargs="*", help="superpoint, indoor, outdoor (default: all)")
    d.add_argument("--weights-dir", type=Path, default=None, help="target folder (default: spsg_ros/models)")
    d.add_argument("--base-url", default=None, help="mirror URL (https:// or file://) holding the files")
    d.add_argument("--force", action="store_true", help="download again even if a valid file is present")
    d.set_defaults(func=run_download)
    c = msub.add_parser("check", help="load weight files and report whether they fit the networks")
    c.add_argument("--superpoint-weights", default=None)
    c.add_argument("--superglue-weights", default=None)
    c.add_argument("--weights-dir", type=Path, default=None)
    c.set_defaults(func=run_check)


def run_download(args: argparse.Namespace) -> int:
    from ..networks.weights import LICENSE_NOTICE, UPSTREAM_BASE_URL, download_weights, sha256
    print(LICENSE_NOTICE)
    paths = download_weights(args.names or None, args.weights_dir, args.base_url or UPSTREAM_BASE_URL,
                             force=args.force)
    for name, path in paths.items():
        print(f"{name}: {path} (git blob id verified, sha256 {sha256(path)})")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from ..networks.weights import load_superglue, load_superpoint, resolve_weights
    if args.superpoint_weights is None and args.superglue_weights is None:
        args.superpoint_weights, args.superglue_weights = "superpoint", "indoor"
    if args.superpoint_weights is not None:
        load_superpoint(args.superpoint_weights, weights_dir=args.weights_dir)
        print(f"superpoint: {resolve_weights(args.superpoint_weights, 'superpoint', args.weights_dir)} OK")
    if args.superglue_weights is not None:
        load_superglue(args.superglue_weights, weights_dir=args.weights_dir)
        print(f"superglue: {resolve_weights(args.superglue_weights, 'superglue', args.weights_dir)} OK")
    return 0
