"""No float near money (DESIGN.md invariants, STYLE 7).

ruff cannot ban a builtin call, so this test reads the source instead: no ``float(...)`` call
anywhere under ``apps/``, and no float literal in the modules that compute money.
"""

import ast
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parents[2] / "apps"


def _sources() -> list[Path]:
    return sorted(p for p in APPS.rglob("*.py") if "migrations" not in p.parts)


def _is_money_module(path: Path) -> bool:
    relative = path.relative_to(APPS).as_posix()
    return (
        relative == "core/money.py"
        or relative.startswith(("metering/services/", "rating/"))
        or "money" in relative
        or "billing" in relative
    )


def float_calls(tree: ast.AST) -> list[int]:
    """Lines calling float(...), also as builtins.float(...)."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id == "float") or (
            isinstance(func, ast.Attribute)
            and func.attr == "float"
            and isinstance(func.value, ast.Name)
            and func.value.id == "builtins"
        ):
            lines.append(node.lineno)
    return lines


def float_literals(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, float)
    ]


def test_the_scan_sees_the_money_code():
    sources = _sources()
    money = [p.relative_to(APPS).as_posix() for p in sources if _is_money_module(p)]

    assert "core/money.py" in money
    assert "metering/services/rollup.py" in money
    assert len(sources) > 20


@pytest.mark.parametrize(
    ("source", "calls", "literals"),
    [
        ("x = float(price)", [1], []),
        ("import builtins\nx = builtins.float('1.5')", [2], []),
        ("rate = 0.2", [], [1]),
        ("rate = Decimal('0.2')\nn = int('3')\nf = 1e3", [], [3]),
        ("decoder = Decoder(float_hook=Decimal)", [], []),
    ],
)
def test_the_scanner_finds_what_it_should(source, calls, literals):
    tree = ast.parse(source)

    assert float_calls(tree) == calls
    assert float_literals(tree) == literals


def test_no_float_calls_anywhere_in_apps():
    found = [
        f"apps/{path.relative_to(APPS)}:{line}"
        for path in _sources()
        for line in float_calls(ast.parse(path.read_text(), filename=str(path)))
    ]

    assert found == [], "float(...) near money; use Decimal: " + ", ".join(found)


def test_no_float_literals_in_money_modules():
    found = [
        f"apps/{path.relative_to(APPS)}:{line}"
        for path in _sources()
        if _is_money_module(path)
        for line in float_literals(ast.parse(path.read_text(), filename=str(path)))
    ]

    assert found == [], "float literal in a money module; use Decimal('...'): " + ", ".join(found)
