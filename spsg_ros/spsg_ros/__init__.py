"""spsg_ros: SuperPoint + SuperGlue / LightGlue perception frontend.

Importing the package makes OpenMP threads sleep instead of spinning when they
run out of work (``OMP_WAIT_POLICY=PASSIVE``): the frontend shares its cores with
other nodes, and spinning workers burn those cores between frames. OpenMP
(torch's libgomp) reads the variable once, when it starts, so it only takes
effect when spsg_ros is imported before torch; a value already in the
environment is kept.
"""

import os
import sys

#: whether OpenMP may already have read its settings (torch imported first)
OPENMP_STARTED_BEFORE_SPSG_ROS = "torch" in sys.modules
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
