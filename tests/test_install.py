"""The lock (constraints.txt, tools/lock.py) and what installs from it: the README's set-up
command, CI and the worker image all take their versions from one file."""

from __future__ import annotations

import re
import sys
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import lock  # noqa: E402
import smoke  # noqa: E402


def setup_cfg() -> ConfigParser:
    config = ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def test_the_lock_pins_every_dependency_and_setup_cfg_stays_loose():
    pins = lock.read()
    direct = smoke.direct_dependencies()
    assert "transformers" in direct and "apache-beam" in direct
    assert set(direct) <= set(pins), set(direct) - set(pins)
    for extra in ("test", "smollm2"):
        specs = setup_cfg()["options.extras_require"][extra].split()
        names = [lock.canonical(re.split(r"[<>=\[ ]", spec)[0]) for spec in specs]
        assert set(names) <= set(pins), (extra, set(names) - set(pins))
    assert "refsift" not in pins and "pip" not in pins and "+" not in pins["torch"]
    assert "==" not in setup_cfg()["options"]["install_requires"]  # ranges for users, exact versions in the lock


def test_readme_ci_and_worker_image_install_from_the_lock():
    pins = lock.read()
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    setup = next(line for line in readme.splitlines() if "pip install" in line and "refsift demo" in line)
    for text in (setup, ci):
        assert f"torch=={pins['torch']}" in text and "-c constraints.txt" in text
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert lock.pin_image(pins, dockerfile) == dockerfile  # the image's Beam and torch are the lock's
    assert "-c /refsift/constraints.txt" in dockerfile
    base = re.search(r"^FROM apache/beam_python(\d)\.(\d+)_sdk:(\S+)$", dockerfile, re.M)
    config = setup_cfg()
    assert f"{base.group(1)}.{base.group(2)}" == config["options"]["python_requires"].removeprefix(">=")
    floor = re.search(r"apache-beam>=([\d.]+)", config["options"]["install_requires"]).group(1)
    assert tuple(map(int, base.group(3).split("."))) >= tuple(map(int, floor.split(".")))


def test_the_lock_round_trips_and_says_what_moved(tmp_path, monkeypatch):
    pins = {"apache-beam": "2.78.0", "torch": "2.13.0", "transformers": "5.25.0", "kernels": "0.19.1"}
    path = tmp_path / "constraints.txt"
    path.write_text(lock.render(pins))
    assert lock.read(path) == pins
    have = {**pins, "transformers": "5.26.0", "extra-package": "1.0"}
    assert lock.differences(pins, have) == ["transformers 5.25.0 -> 5.26.0"]
    assert lock.differences(pins, {"torch": "2.13.0"}) == []  # not installed is not a difference
    image = "FROM apache/beam_python3.11_sdk:2.60.0\nARG TORCH=2.4.0\nRUN true\n"
    assert lock.pin_image(pins, image) == "FROM apache/beam_python3.11_sdk:2.78.0\nARG TORCH=2.13.0\nRUN true\n"
    monkeypatch.setattr(lock, "read", lambda: pins)
    monkeypatch.setattr(lock, "installed", lambda: have)
    assert smoke.moved() == "transformers 5.25.0 -> 5.26.0"


def test_the_smoke_flags_what_a_quiet_run_must_not_print():
    noisy = [
        "Loading weights: 100%|██████████| 28/28 [00:00<00:00, 7872.93it/s]",
        "UserWarning: `loss_type=None` was set in the config but it is unrecognised",
        "Traceback (most recent call last):",
    ]
    quiet = ["documents: read 8 = scored 8 + rejected 0 (none)", "math: 17.3% of the corpus's tokens"]
    assert all(smoke.NOISE.search(line) for line in noisy)
    assert not any(smoke.NOISE.search(line) for line in quiet)
