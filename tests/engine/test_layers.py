"""The engine's layers hold, and the engine stays free of scikit-learn.

Layers of ``skbilevel/engine``, bottom-up. A module may import from its own layer and from the
layers below it, never from a layer above:

======  ==========  ===================================================================
layer   name        parts of ``skbilevel/engine``
======  ==========  ===================================================================
0       primitives  ``linalg/`` (linear solvers, recycle spaces, power iteration and
                    smoothness probes), ``hdm/`` (the HDM update rules), ``_results.py``
                    (result records), ``_torch.py`` (small torch helpers), ``_capabilities.py``
                    (declared capabilities and registries' builder)
1       inner       ``inner/`` problems: datafits, penalties, designs
2       solvers     ``solvers/`` of the inner problems
3       hypergrad   ``hypergrad/`` methods
4       outer       ``outer/`` criteria and optimizers
5       loop        the outer loop: ``loop/``, and ``__init__.py``
======  ==========  ===================================================================

A new part of the engine goes into :data:`LAYERS`; a module the table does not place fails
the test. Code outside the engine (the scikit-learn face, ``optim``, ``utils``) imports only
public engine names: ``from skbilevel.engine[.subpackage] import Name`` with ``Name`` in that
package's ``__all__``, never a private module.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import skbilevel

PACKAGE = Path(skbilevel.__file__).resolve().parent
ENGINE = PACKAGE / "engine"

# First component of a module's path under engine/ -> its layer (see the table above).
LAYERS = {
    "linalg": 0, "hdm": 0, "dp": 0, "_results": 0, "_torch": 0, "_capabilities": 0,
    "inner": 1,
    "solvers": 2,
    "hypergrad": 3,
    "outer": 4,
    "loop": 5, "cleaning": 5, "__init__": 5,
}
LAYER_NAMES = ["primitives", "inner", "solvers", "hypergrad", "outer", "loop"]
# Top-level packages the engine must never import, not even lazily inside a function.
FORBIDDEN_IN_ENGINE = ("sklearn",)


# -- modules and their imports ---------------------------------------------------------------
def _module_name(path: Path) -> str:
    """Dotted name of the module at ``path`` (a package is named by its ``__init__.py``)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path):
    """``(dotted name, is_package, source)`` of every module under ``root``."""
    for path in sorted(root.rglob("*.py")):
        yield _module_name(path), path.name == "__init__.py", path.read_text()


def _in_engine(dotted: str) -> bool:
    return dotted == "skbilevel.engine" or dotted.startswith("skbilevel.engine.")


def _exists(dotted: str) -> bool:
    """Whether ``dotted`` names a module or package of skbilevel on disk."""
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """Absolute name of the module a ``from ... import`` statement reads from."""
    if not node.level:
        return node.module
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, is_package: bool, source: str):
    """``(target module, imported names or None, line, statement)`` for every import.

    Imports anywhere in the file count (inside functions too: a lazy import is still an
    import). ``from package import submodule`` targets the submodule.
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno, ast.unparse(node)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if target.split(".")[0] == "skbilevel" and _exists(sub):
                    yield sub, None, node.lineno, ast.unparse(node)
                else:
                    yield target, alias.name, node.lineno, ast.unparse(node)


# -- the engine's layers ---------------------------------------------------------------------
def _engine_part(dotted: str) -> str:
    """First component under ``skbilevel.engine`` (``"__init__"`` for the package itself)."""
    rest = dotted.split(".")[2:]
    return rest[0] if rest else "__init__"


def _layer(dotted: str) -> int:
    """Layer of the engine module ``dotted``; a KeyError names a part missing from LAYERS."""
    part = _engine_part(dotted)
    if part not in LAYERS:
        raise KeyError(f"{dotted}: engine part {part!r} has no layer; add it to LAYERS in "
                       f"{Path(__file__).name}")
    return LAYERS[part]


def layer_violations(module: str, is_package: bool, source: str) -> list:
    """Imports of the engine module ``module`` that break the layering, as messages."""
    own = _layer(module)
    found = []
    for target, _, line, statement in _imports(module, is_package, source):
        where = f"{module}:{line} `{statement}`"
        top = target.split(".")[0]
        if top in FORBIDDEN_IN_ENGINE:
            found.append(f"{where}: the engine imports {top}")
        elif top == "skbilevel" and not _in_engine(target):
            found.append(f"{where}: the engine imports {target}, outside the engine")
        elif _in_engine(target) and _layer(target) > own:
            found.append(f"{where}: layer {LAYER_NAMES[own]} imports {target} from the "
                         f"higher layer {LAYER_NAMES[_layer(target)]}")
    return list(dict.fromkeys(found))  # one message per statement and target


# -- the estimator layer ---------------------------------------------------------------------
def _public_names(package: str) -> set:
    return set(getattr(importlib.import_module(package), "__all__", ()))


def public_api_violations(module: str, is_package: bool, source: str) -> list:
    """Imports of engine internals by the module ``module`` outside the engine, as messages."""
    found = []
    for target, name, line, statement in _imports(module, is_package, source):
        if not _in_engine(target):
            continue
        where = f"{module}:{line} `{statement}`"
        private = [p for p in target.split(".") if p.startswith("_")]
        if private:
            found.append(f"{where}: imports the private engine module {target}")
        elif not _exists(target) or not (PACKAGE.parent.joinpath(*target.split("."))
                                         / "__init__.py").is_file():
            found.append(f"{where}: {target} is not an engine package")
        elif name is not None and name not in _public_names(target):
            found.append(f"{where}: {name} is not in {target}.__all__")
    return list(dict.fromkeys(found))


def _engine_modules():
    return list(_modules(ENGINE))


def _estimator_modules():
    return [m for m in _modules(PACKAGE) if not _in_engine(m[0])]


# -- the tests ------------------------------------------------------------------------------
def test_checkers_flag_synthetic_bad_imports():
    """The checks below cannot pass vacuously: each flags a planted bad import."""
    bad_engine = textwrap.dedent("""
        from ..solvers import LBFGS
        from ..loop import minimize_hyperparams
        import skbilevel.engine.outer

        def lazy():
            from sklearn.linear_model import enet_path
            from ...utils._tensor import to_numpy
    """)
    found = layer_violations("skbilevel.engine.inner._planted", False, bad_engine)
    assert len(found) == 5, found
    assert all(m.startswith("skbilevel.engine.inner._planted:") for m in found)
    assert "higher layer solvers" in found[0] and "from ..solvers import LBFGS" in found[0]
    assert any("imports sklearn" in m for m in found)
    assert any("outside the engine" in m for m in found)

    good_engine = "from .._results import InnerSolution\nfrom ..linalg import CG\n" \
                  "from ._design import LinearDesign\nimport torch\n"
    assert layer_violations("skbilevel.engine.solvers._planted", False, good_engine) == []
    with pytest.raises(KeyError, match="add it to LAYERS"):
        layer_violations("skbilevel.engine.newpart._planted", False, good_engine)

    bad_face = textwrap.dedent("""
        from .engine.solvers._lbfgs import LBFGS
        from .engine.solvers import NotExported
        from skbilevel.engine import _torch
        import skbilevel.engine.linalg._cg
    """)
    found = public_api_violations("skbilevel._planted", False, bad_face)
    assert len(found) == 4, found
    assert "private engine module skbilevel.engine.solvers._lbfgs" in found[0]
    assert "NotExported is not in skbilevel.engine.solvers.__all__" in found[1]
    good_face = "from .engine.solvers import LBFGS\nfrom ..engine import Fold\n" \
                "from .engine import linalg\n"
    assert public_api_violations("skbilevel.utils._planted", False, good_face) == []


def test_every_engine_module_has_a_layer():
    names = [name for name, _, _ in _engine_modules()]
    assert len(names) > 20  # the walk found the engine
    for name in names:
        _layer(name)  # raises naming the module's part when it has no layer


def test_no_engine_module_imports_a_higher_layer():
    found = [m for name, is_pkg, src in _engine_modules()
             for m in layer_violations(name, is_pkg, src)]
    assert not found, "\n".join(found)


def test_estimator_layer_imports_only_public_engine_names():
    modules = _estimator_modules()
    assert any(name == "skbilevel._ridge" for name, _, _ in modules)
    found = [m for name, is_pkg, src in modules for m in public_api_violations(name, is_pkg, src)]
    assert not found, "\n".join(found)


_IMPORT_EACH = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
    loaded = sorted(m for m in sys.modules if m == "sklearn" or m.startswith("sklearn."))
    if loaded:
        sys.exit(f"import {name} imported scikit-learn: {', '.join(loaded[:5])}")
"""


def test_importing_the_engine_does_not_import_sklearn():
    """A fresh interpreter imports the engine and each subpackage without scikit-learn."""
    packages = ["skbilevel.engine"] + sorted(
        f"skbilevel.engine.{p.name}" for p in ENGINE.iterdir() if (p / "__init__.py").is_file())
    assert "skbilevel.engine.linalg" in packages
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE.parent),
                                                      env.get("PYTHONPATH")]))
    # One interpreter: the check after each import names the first package that loads it.
    proc = subprocess.run([sys.executable, "-c", _IMPORT_EACH, *packages], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
