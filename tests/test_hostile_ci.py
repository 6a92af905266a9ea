"""Issue 16, item 9: the demo page's browser test runs on a fresh machine and in CI.

``make test`` (what CI runs) first installs Debian's ``chromium`` when it is missing
and the user is root; the browser test then drives it (test_serving_browser.py)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import REPO


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_installs_chromium_before_the_tests():
    plan = subprocess.run(
        ["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, timeout=60
    ).stdout
    assert "apt-get install -y" in plan and "chromium" in plan, plan
    assert plan.index("chromium") < plan.index("pytest"), "chromium must be installed first"


@pytest.mark.skipif(
    "MAKELEVEL" not in os.environ or os.geteuid() != 0 or shutil.which("apt-get") is None,
    reason="only under `make test` as root with apt-get (as on CI), where chromium must be there",
)
def test_under_make_test_as_root_chromium_is_installed():
    assert shutil.which("chromium") or shutil.which("chromium-browser")
