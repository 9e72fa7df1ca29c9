"""The shape of the code: packages layered with no import circles (files none either), no
function over 40 lines or 6 parameters, and one training step through few of the project's
names."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scratch", "torch_ref", "compare")
LAYERS = [
    {"scratch", "torch_ref", "compare.errors", "compare.memory"},
    {"compare.layers", "compare.data"},
    {"compare.harness"},
    {"compare.insight"},
    {"compare.training"},
    {"compare.lessons", "compare.bench"},
    {"compare.api", "compare.cli", "compare", "compare.__main__"},
]
"""Bottom first: a module imports only from its own layer's unit or from layers below it (a
unit is a package of compare, or a module at compare's top)."""
MAX_LINES, MAX_PARAMETERS = 40, 6


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project's modules ``path`` imports, at its top or inside a function; ``from a.b import
    c`` imports package ``a.b`` (its ``__init__`` runs) as well as ``a.b.c``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            if node.module in known:
                found.add(node.module)
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def unit(module: str) -> str:
    """The layered unit of a module: its package under compare, or the module itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "compare" and len(parts) > 1 else parts[0]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_every_unit_has_a_layer() -> None:
    placed = set().union(*LAYERS)
    missing = sorted({unit(name) for name in graph()} - placed)
    assert not missing, f"add {missing} to LAYERS in tests/test_layering.py"


def test_imports_go_down_the_layers() -> None:
    level = {name: index for index, layer in enumerate(LAYERS) for name in layer}
    upward = [f"{module} imports {target}" for module, targets in graph().items()
              for target in targets if level[unit(target)] > level[unit(module)]]
    assert not upward, "imports that go up the layers:\n  " + "\n  ".join(sorted(upward))


def test_no_file_imports_itself_through_others() -> None:
    edges = graph()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges[start] - seen:
            seen.add(nxt)
            if nxt == goal or reaches(nxt, goal, seen):
                return True
        return False

    circles = sorted(name for name in edges if reaches(name, name, set()))
    assert not circles, f"modules in an import circle: {circles}"


def test_functions_are_short_and_take_few_parameters() -> None:
    """The CLI's argparse declarations (``add_parser``) aside."""
    over = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            arguments = node.args
            count = len([a for a in [*arguments.posonlyargs, *arguments.args,
                                     *arguments.kwonlyargs] if a.arg not in ("self", "cls")])
            count += bool(arguments.vararg) + bool(arguments.kwarg)
            lines = node.end_lineno - node.lineno + 1
            declaration = name.startswith("compare.cli") and node.name == "add_parser"
            if (lines > MAX_LINES and not declaration) or count > MAX_PARAMETERS:
                over.append(f"{name}.{node.name}: {lines} lines, {count} parameters")
    assert not over, (f"over {MAX_LINES} lines or {MAX_PARAMETERS} parameters:\n  "
                      + "\n  ".join(over))


def test_one_training_step_goes_through_few_names(tmp_path: Path) -> None:
    """From main() down to a step of ``train --backend scratch`` and back: the project's own
    functions on the stack at step 5 and every one called until step 6."""
    from compare import cli

    own = tuple(str(ROOT / package) for package in PACKAGES)
    seen: dict[str, None] = {}
    steps = [0]

    def qualified(frame: object) -> str:
        code = frame.f_code
        return f"{Path(code.co_filename).relative_to(ROOT)}:{code.co_qualname}"

    def profile(frame: object, event: str, arg: object) -> None:
        if event != "call" or not frame.f_code.co_filename.startswith(own):
            return
        if frame.f_code.co_qualname == "ScratchBackend.train_step":
            steps[0] += 1
            outer = frame.f_back
            while steps[0] == 5 and outer is not None:
                if outer.f_code.co_filename.startswith(own):
                    seen[qualified(outer)] = None
                outer = outer.f_back
        if steps[0] == 5:
            seen[qualified(frame)] = None

    sys.setprofile(profile)
    try:
        status = cli.main(["train", "--backend", "scratch", "--dataset", "mnist-sample",
                           "--epochs", "1", "--logdir", str(tmp_path), "--no-insight", "--json"])
    finally:
        sys.setprofile(None)
    assert status == 0
    files = {name.split(":")[0] for name in seen}
    listing = "\n  ".join(seen)
    assert len(seen) <= 20 and len(files) <= 8, (
        f"{len(seen)} names in {len(files)} files (at most 20 in 8):\n  {listing}")
