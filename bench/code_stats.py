"""Size and shape figures of the package and the workflow, for design reviews.

    python bench/code_stats.py [--root .]

Prints the lines of `workflow/rules/common.smk` and README.md, the largest modules,
the longest functions, the import cycles among lskd's modules (every `import` in a
module, at its top or inside a function) and the number of places that iterate
over training batches and step an optimizer (training loops).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def modules(src: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under src/lskd."""
    found = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """lskd modules that `name` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan).

    A package's own `__init__` importing its submodules is not counted."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def import_graph(src: Path) -> dict[str, set[str]]:
    found = modules(src)
    known = set(found)
    graph = {}
    for name, path in found.items():
        targets = imports(name, path, known)
        # `import lskd.x.y` also runs lskd/__init__ and lskd/x/__init__: not an edge
        # of the design, so parents of a module are not counted as its imports
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    return graph


def functions(path: Path) -> list[tuple[int, str]]:
    """(lines, qualified name) of every function in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append((node.end_lineno - node.lineno + 1, node.name))
    return out


def training_loops(path: Path) -> list[str]:
    """Functions that call both `.backward(` and `optimizer.step`-like `.step(`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        calls = {
            n.func.attr
            for n in ast.walk(node)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
        }
        loops = any(isinstance(n, (ast.For, ast.While)) for n in ast.walk(node))
        if {"backward", "step"} <= calls and loops:
            out.append(node.name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).parents[1])
    parser.add_argument("--top", type=int, default=5, help="rows of each list")
    args = parser.parse_args()
    root, src = args.root, args.root / "src"
    lines = lambda p: len(p.read_text().splitlines())  # noqa: E731
    found = modules(src)
    print(
        f"workflow/rules/common.smk: {lines(root / 'workflow/rules/common.smk')} lines"
    )
    print(f"README.md: {lines(root / 'README.md')} lines")
    top_level = [
        n for n, p in found.items() if n.count(".") == 1 and p.name != "__init__.py"
    ]
    print(f"modules: {len(found)}, {len(top_level)} of them directly in lskd/")
    print("largest modules:")
    for n, name in sorted(((lines(p), n) for n, p in found.items()), reverse=True)[
        : args.top
    ]:
        print(f"  {n:5d}  {name}")
    print("longest functions:")
    funcs = [(n, f"{m}.{f}") for m, p in found.items() for n, f in functions(p)]
    for n, name in sorted(funcs, reverse=True)[: args.top]:
        print(f"  {n:5d}  {name}")
    loops = [f"{m}.{f}" for m, p in found.items() for f in training_loops(p)]
    print(
        f"training loops (backward + step in a loop): {len(loops)}: {', '.join(loops)}"
    )
    found_cycles = cycles(import_graph(src))
    print(f"import cycles: {len(found_cycles)}")
    for component in found_cycles:
        print("  " + " <-> ".join(component))


if __name__ == "__main__":
    main()
