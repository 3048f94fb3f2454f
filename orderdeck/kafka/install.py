"""Getting Apache Kafka's jars and a Java runtime to run them with.

The broker is resolved by Maven from package names pinned in ``pom.xml`` beside this file, so
the code names no download address and the version moves with one line. The jars land in a
cache outside the repository (``~/.cache/orderdeck/kafka-<version>/libs``); a marker written
only after a complete copy makes a second install a no-op and an interrupted one start over.
``KAFKA_HOME`` pointing at an unpacked Kafka distribution replaces all of this.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

from orderdeck.errors import OrderdeckError

POM_PATH = Path(__file__).with_name("pom.xml")
LOG4J_CONFIG = Path(__file__).with_name("log4j2.xml")
MIN_JAVA = 17
MARKER = ".installed.json"
_MAVEN_TIMEOUT = 900.0
#: How often an install says it is still at work: a first one takes a minute or more, and
#: Maven (run quiet, its output kept for the error message) prints nothing meanwhile.
PROGRESS_EVERY_S = 10.0
#: Named in full so the plugin is pinned too (Maven's built-in default is years old) and a
#: registry failure is reported as such rather than as an unknown "dependency:" prefix.
COPY_DEPENDENCIES = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"


class KafkaInstallError(OrderdeckError):
    """Kafka's jars could not be found or fetched."""


class MavenError(KafkaInstallError):
    """Maven is missing or could not resolve the pinned Kafka from the registry."""


class JavaError(OrderdeckError):
    """No usable Java runtime (Kafka needs Java 17 or newer)."""


def _read_version(pom: Path) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise KafkaInstallError(f"{pom} does not pin <kafka.version>")
    return (node.text or "").strip()


KAFKA_VERSION: str = _read_version(POM_PATH)


def cache_dir(version: str = KAFKA_VERSION) -> Path:
    """Where the jars of ``version`` are kept.

    ``ORDERDECK_KAFKA_CACHE`` names the directory itself; otherwise it is
    ``$XDG_CACHE_HOME/orderdeck/kafka-<version>`` (``~/.cache`` when XDG_CACHE_HOME is unset).
    """
    override = os.environ.get("ORDERDECK_KAFKA_CACHE")
    if override:
        return Path(override).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().absolute() / "orderdeck" / f"kafka-{version}"


def kafka_home_libs() -> Path | None:
    """``$KAFKA_HOME/libs`` when KAFKA_HOME is set; raises if it is not a Kafka distribution."""
    home = os.environ.get("KAFKA_HOME")
    if not home:
        return None
    libs = Path(home).expanduser().absolute() / "libs"
    if not any(libs.glob("kafka_2.*.jar")):
        raise KafkaInstallError(
            f"KAFKA_HOME={home} is not a Kafka distribution (no libs/kafka_2.*.jar); "
            "unset it to let orderdeck install Kafka with Maven"
        )
    return libs


def _pom_digest() -> str:
    return hashlib.sha256(POM_PATH.read_bytes()).hexdigest()


def is_installed(directory: Path | None = None) -> bool:
    """True when the cache holds a complete copy of the jars the current pom asks for."""
    directory = directory or cache_dir()
    try:
        marker = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and marker.get("pom_sha256") == _pom_digest()
        and any((directory / "libs").glob("kafka_2.*.jar"))
    )


def libs_dir() -> Path:
    """The directory of jars to put on the classpath, installing them first if needed."""
    return kafka_home_libs() or install()


def install(directory: Path | None = None, progress: Callable[[float], None] | None = None) -> Path:
    """Resolve the pinned Kafka into ``directory`` (default: the cache) and return its libs/.

    Idempotent and cheap when already installed. Concurrent installs into the same directory
    wait for each other (file lock) instead of copying twice. ``progress`` is called with the
    seconds elapsed every PROGRESS_EVERY_S while Maven works.
    """
    directory = directory or cache_dir()
    if is_installed(directory):
        return directory / "libs"
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MavenError(
            "Maven (mvn) is needed to install Apache Kafka's jars and was not found on PATH; "
            "install it (Debian: apt-get install maven) or set KAFKA_HOME"
        )
    directory.mkdir(parents=True, exist_ok=True)
    with locked(directory / ".lock"):
        if is_installed(directory):  # another process finished while we waited
            return directory / "libs"
        _copy_dependencies(mvn, directory, progress)
    return directory / "libs"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the block."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _copy_dependencies(
    mvn: str, directory: Path, progress: Callable[[float], None] | None = None
) -> None:
    (directory / MARKER).unlink(missing_ok=True)
    staging = directory / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    pom = directory / "pom.xml"  # Maven may write next to the pom; keep the package read-only
    shutil.copyfile(POM_PATH, pom)
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        COPY_DEPENDENCIES,
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    began = time.monotonic()
    with subprocess.Popen(
        command,
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    ) as maven:
        while True:
            try:
                out, err = maven.communicate(timeout=PROGRESS_EVERY_S)
                break
            except subprocess.TimeoutExpired:  # still at work: say so, then wait on
                elapsed = time.monotonic() - began
                if elapsed >= _MAVEN_TIMEOUT:
                    maven.kill()
                    maven.communicate()
                    raise MavenError(
                        f"Maven did not finish resolving Apache Kafka {KAFKA_VERSION} within "
                        f"{_MAVEN_TIMEOUT:.0f} s; is the Maven registry reachable?"
                    ) from None
                if progress is not None:
                    progress(elapsed)
    if maven.returncode != 0 or not any(staging.glob("kafka_2.*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        raise MavenError(
            f"Maven could not resolve Apache Kafka {KAFKA_VERSION}: "
            f"{maven_failure_reason(out + err)}"
        )
    target = directory / "libs"
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    _write_marker(directory)


def _write_marker(directory: Path) -> None:
    marker = {"kafka_version": KAFKA_VERSION, "pom_sha256": _pom_digest()}
    partial = directory / (MARKER + ".partial")
    partial.write_text(json.dumps(marker) + "\n")
    partial.replace(directory / MARKER)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TELLING = (
    "unknown host",
    "could not transfer",
    "could not resolve",
    "connection refused",
    "connect timed out",
    "network is unreachable",
    "offline mode",
    "failed to collect",
)


def maven_failure_reason(output: str) -> str:
    """The one line of Maven's output that says why it failed (registry down, missing jar...)."""
    lines = [_ANSI.sub("", line).strip() for line in output.splitlines()]
    errors = [line.removeprefix("[ERROR]").strip() for line in lines if line.startswith("[ERROR]")]
    errors = [
        line.removesuffix("-> [Help 1]").strip()
        for line in errors
        if line and not line.startswith(("->", "Re-run", "To see", "For more", "[Help"))
    ]
    for line in errors:
        transfer = _TRANSFER.search(line)
        if transfer:
            artifact, url, detail = transfer.groups()
            cause = detail.rsplit(": ", 1)[-1]
            return _shorten(
                f"could not download {artifact} from {url} ({cause}); "
                "is the Maven registry reachable?"
            )
        if any(word in line.lower() for word in _TELLING):
            return _shorten(line)
    if errors:
        return _shorten(errors[0])
    rest = [line for line in lines if line]
    return _shorten(rest[-1]) if rest else "Maven exited without saying why"


_TRANSFER = re.compile(r"Could not transfer artifact (\S+) from/to \S+ \(([^)]+)\): (.*)")


def _shorten(line: str, limit: int = 300) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


def find_java() -> str:
    """The ``java`` to run Kafka with: ``$JAVA_HOME/bin/java``, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise JavaError(
            f"Java {MIN_JAVA} or newer is needed to run Apache Kafka and `java` was not found "
            "on PATH; install it (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    return java


def java_major_version(java: str) -> int:
    """The major version of ``java`` (8 for "1.8.0_392", 17 for "17.0.15")."""
    return _java_major_version(java, _mtime(java))


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


@functools.cache
def _java_major_version(java: str, _mtime: float) -> int:
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaError(f"could not run {java} -version: {exc}") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if match is None:
        raise JavaError(f"could not tell which Java {java} is (`{java} -version` said nothing)")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def checked_java() -> str:
    """A ``java`` of version 17 or newer, or a JavaError saying what was found instead."""
    java = find_java()
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise JavaError(
            f"Apache Kafka {KAFKA_VERSION} needs Java {MIN_JAVA} or newer, but {java} is "
            f"Java {major}; install a newer one or point JAVA_HOME at it"
        )
    return java
