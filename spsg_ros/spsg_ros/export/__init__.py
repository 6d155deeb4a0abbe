"""Ascend ATC conversion commands for the exported models (:mod:`.atc`).

The ONNX I/O contract and the exporter live with the networks
(:mod:`spsg_ros.networks.contract`, :mod:`spsg_ros.networks.onnx_export`), the
host side of the static SuperGlue with the backends
(:mod:`spsg_ros.backends.static_superglue`).
"""
