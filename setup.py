"""Builds the shared library into the Python package (the metadata is in pyproject.toml).

`cargo build --release --lib` runs when the package is built, and its
target/release/liblanscape_sip.so is copied into lanscape_sip/. With LANSCAPE_SIP_PREBUILT
set to the path of a liblanscape_sip.so, that one is bundled instead and cargo is not run.
"""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        prebuilt = os.environ.get("LANSCAPE_SIP_PREBUILT")
        if prebuilt:
            library = Path(prebuilt)
        else:
            subprocess.check_call(["cargo", "build", "--release", "--lib"], cwd=ROOT)
            target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
            library = target / "release" / "liblanscape_sip.so"
        destination = Path(self.build_lib) / "lanscape_sip" / "liblanscape_sip.so"
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(library, destination)


class BinaryDistribution(Distribution):
    """The wheel carries a native library: it is platform-specific."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
