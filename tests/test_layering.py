"""The house rules of ARCHITECTURE.md, checked.

- Only ``orderdeck/app.py``, ``orderdeck/screens/`` and ``orderdeck/widgets/`` may import
  Textual, so everything else can run and be tested without a terminal.
- Services never import screens (or any UI module).
- The API never imports the services: it produces ``order-events`` and reads the store.
- Screens and widgets never import ``orderdeck.app`` (they talk to it through
  ``screens/protocol.py``), and the package has no import cycle at all (checked statically).
- Screens and widgets import neither aiokafka nor ``orderdeck.kafka`` at run time, except
  ``orderdeck.kafka.cluster_model``, ``offset_plan``, ``lag_time``, ``verdicts`` and
  ``seek_target`` (pure data and arithmetic, no client); Kafka's answers reach them through
  the runtime.
- Only ``orderdeck/kafka/clients.py`` constructs aiokafka clients, so TLS, SASL and client
  ids are set in one place for every client (checked in the source).
- Applying a batch (``services/batch.py``) knows no Kafka: sending and committing are the
  acknowledgement pipeline's (``services/acks.py``).
- Only the store's backends speak to a database driver: ``orderdeck/store/sqlite.py`` alone
  imports ``sqlite3``, ``orderdeck/store/postgres.py`` alone ``psycopg``/``psycopg_pool``; the
  services (and the API) use the transaction API of ``store/tx.py`` and never name a backend.

Each rule is checked twice: statically (every ``import`` in the source, including lazy ones
inside functions) and at run time (importing the modules in a fresh interpreter and looking
at ``sys.modules``, which also catches an import that happens through another module).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "orderdeck"
UI_PREFIXES = ("orderdeck.app", "orderdeck.screens", "orderdeck.widgets")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_ui(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in UI_PREFIXES)


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _imports(path: Path, module: str) -> set[str]:
    """Every module named by an import statement anywhere in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return _names_imported(ast.walk(tree), _package_of(path, module))


def _package_of(path: Path, module: str) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _names_imported(nodes: Iterable[ast.AST], package: str) -> set[str]:
    """The modules (and ``module.name`` pairs) the import statements among ``nodes`` name."""
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _loaded_after_importing(modules: list[str]) -> set[str]:
    """``sys.modules`` of a fresh interpreter after importing ``modules``."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


NON_UI = sorted(m for m in MODULES if not _is_ui(m))
SERVICES = sorted(m for m in MODULES if _matches(m, ("orderdeck.services",)))
API = sorted(m for m in MODULES if _matches(m, ("orderdeck.api", "orderdeck.orders")))


@pytest.mark.parametrize("module", NON_UI)
def test_non_ui_module_does_not_import_textual_in_its_source(module: str) -> None:
    offending = {name for name in _imports(MODULES[module], module) if _matches(name, ("textual",))}
    assert not offending, f"{module} imports {sorted(offending)}"


def test_importing_every_non_ui_module_leaves_textual_unloaded() -> None:
    loaded = _loaded_after_importing(NON_UI)
    if any(_matches(name, ("textual",)) for name in loaded):
        # Name the culprit: import the modules one at a time.
        culprits = [
            module
            for module in NON_UI
            if any(_matches(n, ("textual",)) for n in _loaded_after_importing([module]))
        ]
        pytest.fail(f"importing these modules loads textual: {culprits}")
    assert not any(_is_ui(name) for name in loaded), sorted(n for n in loaded if _is_ui(n))


@pytest.mark.parametrize("module", SERVICES)
def test_services_never_import_the_ui(module: str) -> None:
    offending = {n for n in _imports(MODULES[module], module) if _is_ui(n)}
    assert not offending, f"{module} imports {sorted(offending)}"


def test_applying_a_batch_does_not_import_kafka() -> None:
    module = "orderdeck.services.batch"
    offending = {
        n for n in _imports(MODULES[module], module) if _matches(n, ("aiokafka", "orderdeck.kafka"))
    }
    assert not offending, f"{module} imports {sorted(offending)}"


@pytest.mark.parametrize("module", API)
def test_api_never_imports_the_services(module: str) -> None:
    offending = {
        n for n in _imports(MODULES[module], module) if _matches(n, ("orderdeck.services",))
    }
    assert not offending, f"{module} imports {sorted(offending)}"


@pytest.mark.skipif(not API, reason="the API modules do not exist yet")
def test_importing_the_api_loads_no_service_and_no_ui() -> None:
    loaded = _loaded_after_importing(API)
    assert not {n for n in loaded if _matches(n, ("orderdeck.services",)) or _is_ui(n)}


AIOKAFKA_CLIENTS = frozenset(
    {
        "AIOKafkaProducer",
        "AIOKafkaConsumer",
        "AIOKafkaAdminClient",
        "AIOKafkaClient",
        "AIOKafkaConnection",
        "create_conn",
    }
)
CLIENT_FACTORY = "orderdeck.kafka.clients"


def _client_constructions(path: Path) -> list[str]:
    """``name:line`` of every call of an aiokafka client class (also renamed on import)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in AIOKAFKA_CLIENTS:
                found.append(f"{name}:{node.lineno}")
        elif isinstance(node, ast.ImportFrom):
            found += [
                f"{alias.name} as {alias.asname}:{node.lineno}"
                for alias in node.names
                if alias.name in AIOKAFKA_CLIENTS and alias.asname not in (None, alias.name)
            ]
    return found


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != CLIENT_FACTORY))
def test_only_the_client_factory_constructs_aiokafka_clients(module: str) -> None:
    found = _client_constructions(MODULES[module])
    assert not found, f"{module} builds aiokafka clients itself ({found}); use {CLIENT_FACTORY}"


def test_the_client_factory_rule_sees_the_factory() -> None:
    found = {entry.partition(":")[0] for entry in _client_constructions(MODULES[CLIENT_FACTORY])}
    assert found == {
        "AIOKafkaProducer",
        "AIOKafkaConsumer",
        "AIOKafkaAdminClient",
        "AIOKafkaConnection",  # the bounded connection check
    }


def test_the_rules_see_the_package() -> None:
    assert "orderdeck.kafka.local" in NON_UI
    assert "orderdeck.cli" in NON_UI
    assert not any(_is_ui(m) for m in NON_UI)


def _import_graph() -> dict[str, set[str]]:
    """Package module -> the package modules it imports (anywhere: lazily, for typing too).

    ``from orderdeck.x import y`` is an edge to ``orderdeck.x`` and, when ``y`` is a module,
    to ``orderdeck.x.y`` as well.
    """
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = set()
        for name in _imports(path, module):
            if name not in MODULES:
                name = name.rpartition(".")[0]  # an attribute: its module
            if name in MODULES and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


SCREENS_AND_WIDGETS = sorted(
    m for m in MODULES if _matches(m, ("orderdeck.screens", "orderdeck.widgets"))
)


@pytest.mark.parametrize("module", SCREENS_AND_WIDGETS)
def test_screens_and_widgets_never_name_the_app(module: str) -> None:
    offending = {n for n in _imports(MODULES[module], module) if _matches(n, ("orderdeck.app",))}
    assert not offending, f"{module} imports {sorted(offending)}"


def test_the_package_has_no_import_cycle() -> None:
    cycle = _find_cycle(_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


#: Each database driver, and the one module allowed to import it.
DRIVERS = {
    "sqlite3": "orderdeck.store.sqlite",
    "psycopg": "orderdeck.store.postgres",
    "psycopg_pool": "orderdeck.store.postgres",
}
BACKENDS = ("orderdeck.store.sqlite", "orderdeck.store.postgres")
#: What ``orderdeck.store`` re-exports from a backend: not for the services or the API.
BACKEND_NAMES = frozenset({"Store", "SQLiteStore", "SQLiteWriteTx", "PostgresStore"})


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_store_backends_import_a_database_driver(module: str) -> None:
    imported = _imports(MODULES[module], module)
    offending = {
        driver
        for driver, owner in DRIVERS.items()
        if module != owner and any(_matches(n, (driver,)) for n in imported)
    }
    assert not offending, f"{module} imports {sorted(offending)}: only the store backends may"


@pytest.mark.parametrize("module", sorted({*SERVICES, *API, "orderdeck.order_desk"}))
def test_services_and_the_api_use_the_transaction_api_not_a_backend(module: str) -> None:
    imported = _imports(MODULES[module], module)
    offending = {n for n in imported if _matches(n, BACKENDS)}
    offending |= {f"orderdeck.store.{name}" for name in BACKEND_NAMES} & imported
    assert not offending, f"{module} imports {sorted(offending)}; use orderdeck.store.tx"


def test_the_driver_rule_sees_the_sqlite_backend() -> None:
    module = "orderdeck.store.sqlite"
    assert "sqlite3" in _imports(MODULES[module], module)


#: The ``orderdeck.kafka`` modules screens and widgets may import at run time: pure data, no client.
UI_KAFKA_MODELS = (
    "orderdeck.kafka.cluster_model",
    "orderdeck.kafka.offset_plan",
    "orderdeck.kafka.lag_time",
    "orderdeck.kafka.verdicts",
    "orderdeck.kafka.seek_target",
)


def _runtime_imports(path: Path, module: str) -> set[str]:
    """:func:`_imports` less those under ``if TYPE_CHECKING:`` (names for the type checker)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in _TYPE_CHECKING:
            typing_only.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    nodes = (n for n in ast.walk(tree) if id(n) not in typing_only)
    return _names_imported(nodes, _package_of(path, module))


_TYPE_CHECKING = frozenset({"TYPE_CHECKING", "typing.TYPE_CHECKING"})


@pytest.mark.parametrize("module", SCREENS_AND_WIDGETS)
def test_screens_and_widgets_use_kafka_only_through_the_runtime(module: str) -> None:
    """No aiokafka and no Kafka module but the cluster's data model at run time: screens get
    Kafka's answers from the runtime, never by asking Kafka on the UI loop."""
    offending = {
        n
        for n in _runtime_imports(MODULES[module], module)
        if _matches(n, ("aiokafka", "orderdeck.kafka"))
        and not _matches(n, UI_KAFKA_MODELS)
        # ``from orderdeck.kafka import lag_time`` also names the package; its modules are judged
        and n != "orderdeck.kafka"
    }
    assert not offending, f"{module} imports {sorted(offending)} at run time"


def test_the_ui_kafka_rule_sees_a_runtime_import(tmp_path: Path) -> None:
    path = tmp_path / "screen.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "from orderdeck.kafka.cluster_model import ClusterView\n"
        "if TYPE_CHECKING:\n"
        "    from orderdeck.kafka.admin import GroupSnapshot\n"
        "import aiokafka\n"
    )
    found = _runtime_imports(path, "orderdeck.screens.screen")
    assert "aiokafka" in found
    assert "orderdeck.kafka.cluster_model" in found
    assert "orderdeck.kafka.admin" not in found
