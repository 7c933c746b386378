"""The house rules, checked on the code itself: the run time never imports the lab, the
app talks to the engine facade only, and `import engine` stays cheap."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB = ("training", "evaluation")


def imports(path: Path, with_names: bool = True) -> set[str]:
    """Modules a file imports, absolute (relative imports resolved against its package);
    with_names also lists `from M import N` as M.N (N may be a submodule)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            mod = ".".join(p for p in (base, node.module or "") if p)
            out.add(mod)
            if with_names:
                out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def test_the_runtime_never_imports_the_lab():
    runtime = sorted((ROOT / "engine").glob("*.py"))
    assert len(runtime) > 10
    for path in runtime:
        bad = {m for m in imports(path) if any(m.startswith(f"engine.{lab}") for lab in LAB)}
        assert not bad, (path.name, bad)


def test_the_app_uses_the_facade_only():
    for path in sorted((ROOT / "app").glob("*.py")) + [ROOT / "app.py"]:
        bad = {m for m in imports(path, with_names=False) if m.startswith("engine.")}
        assert not bad, (path.name, bad)


def test_import_engine_and_cli_help_stay_cheap():
    code = ("import sys, engine, engine.cli; engine.cli.build_parser(None);"
            "print([m for m in ('torch', 'faiss', 'av', 'gradio', 'umap') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_cli_choices_match_the_engine():
    from engine.backbone import Backbone, Precision
    from engine.cli import BACKBONES, COMMANDS, MEASURES, PRECISIONS, build_parser
    from engine.similarity import Measure

    assert BACKBONES == tuple(b.value for b in Backbone) and MEASURES == tuple(m.value for m in Measure)
    assert PRECISIONS == tuple(p.value for p in Precision)
    for name in COMMANDS:  # every command's module declares its arguments
        build_parser(name)
