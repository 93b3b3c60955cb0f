"""The layout's rules, read from the code: imports point only downward, pjsua2 in one module."""

from __future__ import annotations

import ast
from pathlib import Path

import sipbridge

ROOT = Path(sipbridge.__file__).parent

# Each part and what it may import from sipbridge (besides itself). Lower parts know nothing
# of the parts above them: api → admin → commands → phone / catalog / tracker / sip; pbx →
# commands.
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "levels": set(),
    "tls": {"errors"},
    "catalog": {"errors"},
    "sip": {"errors", "tls"},
    "tracker": {"errors", "levels", "sip"},
    "phone": {"errors", "catalog", "sip"},
    "commands": {"errors", "catalog", "sip", "tracker", "phone"},
    "pbx": {"errors", "catalog", "sip", "tracker", "commands"},
    "sim": {"errors", "catalog", "sip"},
    "config": {"errors", "sip"},
    "admin": {"errors", "levels", "tls", "config", "sip", "tracker", "commands"},
    "api": {
        "errors",
        "levels",
        "tls",
        "catalog",
        "sip",
        "tracker",
        "phone",
        "commands",
        "pbx",
        "config",
        "admin",
    },
    "workers": {"errors", "config"},
    "client": {"errors", "config"},
    "cli": {
        "errors",
        "levels",
        "tls",
        "catalog",
        "tracker",
        "phone",
        "api",
        "admin",
        "config",
        "sim",
        "workers",
        "client",
    },
    "__main__": {"cli"},
    "__init__": set(),
}


def _part(path: Path) -> str:
    relative = path.relative_to(ROOT)
    return relative.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(names)
    return found


def _modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def test_every_part_has_a_rule():
    assert {_part(path) for path in _modules()} <= set(MAY_IMPORT)


def test_imports_point_only_downward():
    wrong = []
    for path in _modules():
        part = _part(path)
        for name in _imports(path):
            if not name.startswith("sipbridge.") or name.count(".") < 1:
                continue
            target = name.split(".")[1]
            if target in (part, "__version__") or target not in MAY_IMPORT:
                continue
            if target not in MAY_IMPORT[part]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_pjsua2_is_imported_in_one_module_only():
    importers = [
        path.relative_to(ROOT).as_posix()
        for path in _modules()
        if any(name == "pjsua2" or name.startswith("pjsua2.") for name in _imports(path))
    ]
    assert importers == ["sip/_pjsua2.py"]


def test_private_modules_are_not_imported_from_outside_their_package():
    """`catalog._fields`, `sip._pjsua2`...: a package's own business; others use its __init__."""
    wrong = []
    for path in _modules():
        here = "sipbridge." + ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
        for name in _imports(path):
            parts = name.split(".")
            for depth in range(2, len(parts)):
                module = ROOT.joinpath(*parts[1:depth + 1])
                private = parts[depth].startswith("_") and not parts[depth].startswith("__")
                if not private or not (module.with_suffix(".py").exists() or module.is_dir()):
                    continue
                package = ".".join(parts[:depth])
                if here != package and not here.startswith(package + "."):
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(sorted(set(wrong)))
