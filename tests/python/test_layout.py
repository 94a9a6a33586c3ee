"""The package's shape (docs/architecture.md): imports flow one way, no module imports the
package's __init__, and every module is small enough to hold in one's head."""

import ast
import pathlib

import dgen_py

PACKAGE = pathlib.Path(dgen_py.__file__).parent
REPO = pathlib.Path(__file__).resolve().parents[2]
MAX_PY_LINES = 400
MAX_CPP_LINES = 600


def modules() -> dict[str, pathlib.Path]:
    """'dgen_py.cli.verify' -> its file, for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: pathlib.Path, known) -> set[str]:
    """The package modules `name` imports, anywhere in its file (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "dgen_py"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "dgen_py":
                target = node.module
            else:
                continue
            # `from . import x` names a module x when one exists, else a name of target.
            subs = {f"{target}.{a.name}" for a in node.names} & known
            out |= subs or {target}
    return out - {name}


def graph() -> dict[str, set[str]]:
    known = modules()
    compiled = {f"dgen_py.{p.name.split('.')[0]}" for p in PACKAGE.glob("*.so")}  # _core
    return {name: imports(name, path, set(known) | compiled) & set(known)
            for name, path in known.items()}


def test_no_module_imports_the_package_init():
    offenders = sorted(m for m, deps in graph().items() if "dgen_py" in deps and m != "dgen_py")
    assert offenders == []


def test_imports_have_no_circle():
    g = graph()
    g.pop("dgen_py")  # the package's __init__ imports the public names; nothing imports it
    cycles = []

    def visit(node, stack, done):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in done:
            return
        done.add(node)
        for dep in sorted(g.get(node, ())):
            visit(dep, stack + [node], done)

    done = set()
    for node in sorted(g):
        visit(node, [], done)
    assert cycles == []


def test_every_python_module_is_at_most_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_PY_LINES}
    assert long == {}


def test_every_cpp_file_is_at_most_600_lines():
    files = [p for d in ("include", "src", "tests/cpp", "benchmarks") for p in (REPO / d).rglob("*")
             if p.suffix in (".cpp", ".hpp", ".h", ".cc")]
    assert files, f"no C++ sources under {REPO}"
    long = {str(p.relative_to(REPO)): n for p in files
            if (n := len(p.read_text().splitlines())) > MAX_CPP_LINES}
    assert long == {}
