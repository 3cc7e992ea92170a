"""The shape of the nasbench package at one or more git refs.

    python benchmarks/code_shape.py --ref BEFORE --ref HEAD [--out shape.md]

For each ref it reads the ``nasbench/`` package straight from git (``git ls-tree``
and ``git show``: nothing is checked out) and parses every ``.py`` file with ``ast``.
It reports, per ref:

* the ten longest functions and methods, in lines from the ``def`` line (decorators
  not counted) to the function's last line: ``end_lineno - lineno + 1``; a nested
  function is listed on its own and also counts in its enclosing function's length;
* the ten functions with the most parameters: positional-only, ordinary and
  keyword-only parameters, ``*args`` and ``**kwargs`` one each, ``self``/``cls`` not
  counted; click command functions are left out (their parameters are the
  command's options, one per ``@click.option``);
* how many functions are over 60 lines and how many are over 10 parameters (the
  latter with the same click exclusion).

A click command function is one with a decorator ``@click.command``,
``@click.group`` or ``@<group>.command`` / ``@<group>.group`` (e.g.
``@main.command("models")`` in nasbench/cli.py), which is how nasbench/cli.py,
nasbench/nas/command.py, nasbench/proxy/command.py and nasbench/report/command.py
declare their commands.
Standard library only.
"""
from __future__ import annotations

import argparse
import ast
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "nasbench"
TOP = 10
LONG_LINES = 60
MANY_PARAMS = 10


@dataclass(frozen=True)
class Func:
    """One function or method: where it is, its length in lines, its parameter count."""

    name: str          # module:Class.func
    lines: int
    params: int
    is_click_command: bool


def git(repo: Path, *args: str) -> str:
    """Output of one git command run in ``repo`` (raises if git fails)."""
    return subprocess.run(["git", "-C", str(repo), *args], check=True,
                          capture_output=True, text=True).stdout


def package_sources(repo: Path, ref: str) -> dict[str, str]:
    """Path -> text of every .py file under nasbench/ at ``ref``."""
    paths = git(repo, "ls-tree", "-r", "--name-only", "--full-tree", ref, PACKAGE).splitlines()
    if not paths:
        raise SystemExit(f"no {PACKAGE}/ files at {ref}")
    return {p: git(repo, "show", f"{ref}:{p}") for p in paths if p.endswith(".py")}


def module_name(path: str) -> str:
    """nasbench/nas/search.py -> nasbench.nas.search (``__init__`` -> the package)."""
    parts = Path(path).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def param_count(args: ast.arguments) -> int:
    """Parameters of a def: named ones except self/cls, plus one each for *args/**kwargs."""
    named = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    starred = (args.vararg is not None) + (args.kwarg is not None)
    return sum(1 for a in named if a not in ("self", "cls")) + starred


def is_click_command(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """True for @click.command / @click.group / @<group>.command / @<group>.group."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        text = ast.unparse(target)
        if text in ("click.command", "click.group") or text.endswith((".command", ".group")):
            return True
    return False


def functions_in(module: str, tree: ast.AST) -> list[Func]:
    """Every def in a module (methods and nested defs too), with a qualified name."""
    found: list[Func] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                found.append(Func(f"{module}:{name}", child.end_lineno - child.lineno + 1,
                                  param_count(child.args), is_click_command(child)))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def not_click(funcs: list[Func]) -> list[Func]:
    """The functions that are not click command functions."""
    return [f for f in funcs if not f.is_click_command]


def measure(repo: Path, ref: str) -> list[Func]:
    """All functions of the nasbench package at ``ref``."""
    funcs: list[Func] = []
    for path, text in sorted(package_sources(repo, ref).items()):
        funcs += functions_in(module_name(path), ast.parse(text, filename=path))
    return funcs


def summary_table(refs: list[str], shapes: dict[str, list[Func]]) -> str:
    """The counts, one column per ref."""
    def row(label: str, value) -> str:
        return f"| {label} | " + " | ".join(str(value(shapes[r])) for r in refs) + " |"

    lines = [f"| measure | {' | '.join(f'`{r}`' for r in refs)} |",
             "|---" * (len(refs) + 1) + "|",
             row("functions and methods", len),
             row(f"functions over {LONG_LINES} lines",
                 lambda fs: sum(f.lines > LONG_LINES for f in fs)),
             row(f"functions over {MANY_PARAMS} parameters (click commands left out)",
                 lambda fs: sum(f.params > MANY_PARAMS for f in not_click(fs))),
             row("longest function (lines)", lambda fs: max(f.lines for f in fs)),
             row("most parameters (click commands left out)",
                 lambda fs: max(f.params for f in not_click(fs)))]
    return "\n".join(lines)


def top_table(funcs: list[Func], key: str) -> str:
    """The TOP functions by ``key`` ('lines' or 'params'), largest first."""
    ranked = sorted(funcs, key=lambda f: (-getattr(f, key), f.name))[:TOP]
    lines = ["| # | function | lines | parameters |", "|---|---|---|---|"]
    lines += [f"| {i} | `{f.name}`{' (click command)' if f.is_click_command else ''} "
              f"| {f.lines} | {f.params} |" for i, f in enumerate(ranked, 1)]
    return "\n".join(lines)


def report(repo: Path, refs: list[str]) -> str:
    """The whole markdown report: counts side by side, then two top-ten tables per ref."""
    shapes = {r: measure(repo, r) for r in refs}
    names = {r: textwrap.shorten(git(repo, "log", "-1", "--format=%h %s", r), 90,
                                 placeholder=" …") for r in refs}
    parts = ["# Shape of the nasbench package", "",
             "\n".join(f"- `{r}`: {names[r]}" for r in refs), "",
             summary_table(refs, shapes)]
    for r in refs:
        parts += ["", f"## `{r}`", "",
                  "Ten longest functions (lines, `def` to end):", "",
                  top_table(shapes[r], "lines"), "",
                  "Ten functions with the most parameters (click commands left out):", "",
                  top_table(not_click(shapes[r]), "params")]
    return "\n".join(parts) + "\n"


def main() -> None:
    """Parse the command line, print the report and write it to --out if given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", action="append", required=True,
                        help="a git ref to measure (repeat for before/after)")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent,
                        help="a folder inside the git checkout (default: this script's)")
    args = parser.parse_args()
    text = report(args.repo, args.ref)
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
