# SPDX-License-Identifier: MIT
"""In-tree PEP 517 backend: maturin when Rust can be built here, a pure-Python wheel when it cannot.

Installing the sdist on a machine without a Rust toolchain must give a working pure install (the
``_native_py`` twin) instead of a build error. maturin cannot build a wheel without cargo, so this
module checks once per hook:

* cargo on PATH and ``AIOREQUESTFUL_NO_EXTENSIONS`` unset -> every hook is maturin's own (errors included:
  a broken Rust build must fail loudly, never degrade silently);
* otherwise -> a ``py3-none-any`` wheel of ``python/aiorequestful`` written here from ``[project]``.

The pure writer only needs the standard library (``tomllib`` is 3.11+, our floor).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
_PACKAGE = "aiorequestful"
_FALSY = frozenset({"", "0", "false", "no", "off"})


def _native_build() -> bool:
    if os.environ.get("AIOREQUESTFUL_NO_EXTENSIONS", "").strip().lower() not in _FALSY:
        return False
    return shutil.which("cargo") is not None


def _maturin() -> Any:
    import maturin  # only imported when a Rust build is possible

    return maturin


# --------------------------------------------------------------------------------------------------
# PEP 517 / PEP 660 hooks
# --------------------------------------------------------------------------------------------------
def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _maturin().get_requires_for_build_wheel(config_settings) if _native_build() else []


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _maturin().get_requires_for_build_editable(config_settings) if _native_build() else []


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _maturin().get_requires_for_build_sdist(config_settings) if _native_build() else []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    if _native_build():
        return _maturin().prepare_metadata_for_build_wheel(metadata_directory, config_settings)
    return _write_dist_info(Path(metadata_directory))


def prepare_metadata_for_build_editable(metadata_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    if _native_build():
        return _maturin().prepare_metadata_for_build_editable(metadata_directory, config_settings)
    return _write_dist_info(Path(metadata_directory))


def build_wheel(
    wheel_directory: str, config_settings: dict[str, Any] | None = None, metadata_directory: str | None = None
) -> str:
    if _native_build():
        return _maturin().build_wheel(wheel_directory, config_settings, metadata_directory)
    files = {f"{_PACKAGE}/{path.relative_to(_package_dir()).as_posix()}": path.read_bytes() for path in _sources()}
    return _write_wheel(Path(wheel_directory), files)


def build_editable(
    wheel_directory: str, config_settings: dict[str, Any] | None = None, metadata_directory: str | None = None
) -> str:
    if _native_build():
        return _maturin().build_editable(wheel_directory, config_settings, metadata_directory)
    pth = (str(_package_dir().parent) + "\n").encode()
    return _write_wheel(Path(wheel_directory), {f"_{_PACKAGE}_editable.pth": pth})


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    if _native_build():
        return _maturin().build_sdist(sdist_directory, config_settings)
    return _write_sdist(Path(sdist_directory))


# --------------------------------------------------------------------------------------------------
# the pure writer
# --------------------------------------------------------------------------------------------------
def _project() -> dict[str, Any]:
    with (_ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["project"]


def _package_dir() -> Path:
    return _ROOT / "python" / _PACKAGE


def _sources() -> list[Path]:
    skip_suffixes = {".so", ".pyd", ".pyc", ".dll", ".dylib"}
    return sorted(
        path
        for path in _package_dir().rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in skip_suffixes
    )


def _dist_name() -> str:
    project = _project()
    return f"{project['name'].replace('-', '_')}-{project['version']}"


def _metadata() -> bytes:
    project = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '')}",
    ]
    lines += [f"Classifier: {item}" for item in project.get("classifiers", [])]
    lines += [f"Requires-Dist: {req}" for req in project.get("dependencies", [])]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for req in reqs:
            spec, _, marker = req.partition(";")
            condition = f'({marker.strip()}) and extra == "{extra}"' if marker.strip() else f'extra == "{extra}"'
            lines.append(f"Requires-Dist: {spec.strip()}; {condition}")
    readme = _ROOT / "README.md"
    body = ""
    if readme.is_file():
        lines.append("Description-Content-Type: text/markdown")
        body = "\n" + readme.read_text(encoding="utf-8")
    return ("\n".join(lines) + "\n" + body).encode()


def _wheel_file() -> bytes:
    return b"Wheel-Version: 1.0\nGenerator: aiorequestful_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _write_dist_info(directory: Path) -> str:
    name = f"{_dist_name()}.dist-info"
    target = directory / name
    target.mkdir(parents=True, exist_ok=True)
    (target / "METADATA").write_bytes(_metadata())
    (target / "WHEEL").write_bytes(_wheel_file())
    return name


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(directory: Path, files: dict[str, bytes]) -> str:
    dist_info = f"{_dist_name()}.dist-info"
    files = dict(files)
    files[f"{dist_info}/METADATA"] = _metadata()
    files[f"{dist_info}/WHEEL"] = _wheel_file()
    record = [_record_line(name, data) for name, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()

    directory.mkdir(parents=True, exist_ok=True)
    wheel_name = f"{_dist_name()}-py3-none-any.whl"
    stamp = time.localtime(max(time.time(), 315532800))[:6]  # zip cannot store dates before 1980
    with zipfile.ZipFile(directory / wheel_name, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return wheel_name


def _write_sdist(directory: Path) -> str:
    base = _dist_name()
    roots = ["pyproject.toml", "Cargo.toml", "Cargo.lock", "README.md", "build_backend", "python", "rust"]
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{base}.tar.gz"
    with tarfile.open(directory / name, "w:gz") as tar:
        pkg_info = _metadata()
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        info.size = len(pkg_info)
        tar.addfile(info, io.BytesIO(pkg_info))
        for root in roots:
            path = _ROOT / root
            if path.exists():
                tar.add(path, arcname=f"{base}/{root}", filter=_sdist_filter)
    return name


def _sdist_filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = Path(info.name).parts
    if "__pycache__" in parts or "target" in parts or info.name.endswith((".so", ".pyc")):
        return None
    return info
