"""Mutation testing, outside CI: how much of a small change to the code behind the README's claims the suite notices.

    pip install mutmut==2.5.1 coverage && pip install --no-deps pytest-cov
    (mutmut 3.x pulls rich>=14, which finn-plus refuses)
    python scripts/mutation.py [MODULE ...] [--sample 0.3] [--jobs 2] [--results mutation.jsonl] [--survivors]

mutmut 2.5.1 makes the mutants (its operators: numbers, comparisons, operators, keywords, strings, arguments,
assignments). This runner replaces its one-process-per-mutant loop, which costs ~25 s of imports per mutant here:

1. Baseline: the module's test files (``-m "not slow"``) run once under coverage with one context per test, in a
   scratch copy of the tree; every test must pass. This maps each line to the tests that execute it
   (pytest-cov's contexts: a fixture's lines count for the test whose setup ran them; a statement over several
   lines counts on its first line).
2. Each mutant is written into a scratch copy and the tests that execute its line run with ``-x`` in a process
   forked from one that has already imported torch, brevitas, onnx and FINN (vidconv_edge and the tests are
   imported in the child; no plugin autoload, no assertion rewriting). The forked runner must first pass on the
   unmutated tree. Lines that run at import time (module level, ``def`` lines, class bodies) run the tests of the
   function they belong to, or of every function of the module that uses a name they define
   (``import_time_scope``); a test that uses such a name directly is not credited.
3. A failing test, source that does not compile or a timeout (10x the baseline time of the test files involved
   + 120 s: other jobs may share the cores) kills the mutant; a line that no test executes leaves it alive.
   pytest's exit codes 4 and 5 (tests not found) are runner errors, never kills.

Only the listed test files are run, so the kill rate is a lower bound for the whole suite. Results are appended to
a JSON-lines file (an interrupted run goes on where it stopped); the summary prints killed / total per module and
every surviving mutant as a one-line diff. The checkout is never mutated.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STREAM_TESTS = [
    "tests/test_stream.py",
    "tests/test_stream_fpga.py",
    "tests/test_stream_multi.py",
    "tests/test_stream_sources.py",
    "tests/test_stream_outputs.py",
    "tests/test_onnx_cache.py",
    "tests/test_finn_sim_exec.py",
]
MODEL_TESTS = ["tests/test_models.py", "tests/test_pretrained.py", "tests/test_quant_reference.py", "tests/test_export.py"]
TESTS = {  # module, or folder of modules -> the test files that hold it
    "vidconv_edge/models": MODEL_TESTS,
    "vidconv_edge/stream": STREAM_TESTS,
    "vidconv_edge/export/checks.py": ["tests/test_export.py"],
    "vidconv_edge/hw/precision.py": ["tests/test_hw.py"],
}


# pytest's exit codes: 1 a test failed, 2 collection failed (the mutant breaks an import); 4 (usage) and 5 (no test
# collected) mean the runner asked for tests that do not exist: an error of this script, never a kill.
STATUS = {0: "survived", 1: "killed", 2: "killed", 3: "killed"}


@dataclass(frozen=True)
class Mutant:
    module: str  # path relative to the root
    line_number: int  # 0-based, as mutmut counts
    index: int
    line: str  # the source line, as mutmut identifies it

    @property
    def key(self) -> str:
        return f"{self.module}:{self.line_number}:{self.index}"


def modules_of(target: str) -> list[str]:
    """The .py files of a module or folder (relative paths)."""
    path = ROOT / target
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return [str(f.relative_to(ROOT)) for f in files]


def list_mutants(module: str) -> list[Mutant]:
    from mutmut import Context, list_mutations

    source = (ROOT / module).read_text()
    ids = list_mutations(Context(source=source, filename=module))
    return [Mutant(module, m.line_number, m.index, m.line) for m in ids]


def mutated_source(mutant: Mutant) -> str:
    from mutmut import Context, RelativeMutationID, mutate

    source = (ROOT / mutant.module).read_text()
    mid = RelativeMutationID(line=mutant.line, index=mutant.index, line_number=mutant.line_number)
    new, count = mutate(Context(source=source, mutation_id=mid, filename=mutant.module))
    if count != 1:
        raise RuntimeError(f"mutmut applied {count} mutations for {mutant.key}")
    return new


def compiles(source: str) -> bool:
    try:
        compile(source, "<mutant>", "exec")
    except SyntaxError:
        return False
    return True


def diff_line(mutant: Mutant, new: str) -> str:
    old_lines, new_lines = (ROOT / mutant.module).read_text().splitlines(), new.splitlines()
    changed = [(o, n) for o, n in zip(old_lines, new_lines) if o != n]
    if len(old_lines) != len(new_lines) or not changed:
        return f"line {mutant.line_number + 1}: (lines removed or added)"
    return " | ".join(f"{o.strip()}  ->  {n.strip()}" for o, n in changed)


def scratch_copy() -> Path:
    """The checkout's files that git tracks, as they are now (tests read scripts/, examples/, configs/ and the README
    too); ``git add`` a new test file for it to run."""
    work = Path(tempfile.mkdtemp(prefix="mutation-"))
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, work / name)
    return work


def baseline(work: Path, test_files: list[str], targets: list[str]) -> tuple[dict, dict]:
    """Run the test files once under coverage: {module: {line (1-based): [node ids]}} and {node id: seconds}."""
    junit = work / "baseline.xml"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(work)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", f"--junitxml={junit}",
           f"--cov={work / 'vidconv_edge'}", "--cov-context=test", "--cov-report=", *test_files]
    done = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        sys.exit(f"mutation.py: the baseline tests fail on the unmutated tree:\n{done.stdout[-3000:]}")
    seconds: dict[str, float] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        *package, last = case.get("classname", "").split(".")
        path, classes = "/".join([*package, last]), []
        if last[:1].isupper():  # a test class: classname is tests.test_x.TestY
            path, classes = "/".join(package), [last]
        seconds["::".join([path + ".py", *classes, case.get("name")])] = float(case.get("time", 0))
    from coverage import CoverageData

    data = CoverageData(basename=str(work / ".coverage"))
    data.read()
    lines: dict[str, dict[int, list[str]]] = {}
    for module in targets:
        by_line = data.contexts_by_lineno(str(work / module))
        lines[module] = {n: sorted({c.split("|")[0] for c in ctx}) for n, ctx in by_line.items()}
    return lines, seconds


class ModuleShape:
    """What the runner needs from a module's syntax tree, parsed once: the lines inside function bodies (every
    other line runs when the module is imported), each statement's first line, and each function's names."""

    def __init__(self, module: str):
        self.module = module
        tree = ast.parse((ROOT / module).read_text())
        self.tree = tree
        self.functions: list[tuple[set[str], range]] = []  # (names its body uses, ``x`` and ``.x``; its body lines)
        self.starts: dict[int, int] = {}  # line -> first line of the innermost statement holding it
        for node in ast.walk(tree):  # outer nodes first, inner ones later
            if isinstance(node, ast.stmt):
                self.starts.update(dict.fromkeys(range(node.lineno, node.end_lineno + 1), node.lineno))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                used |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
                self.functions.append((used, range(node.body[0].lineno, node.end_lineno + 1)))
        self.body = {n for _, lines in self.functions for n in lines}

    def statement_start(self, line: int) -> int:
        """Coverage records a statement that spans several lines (a long literal, a call) on its first line only."""
        return self.starts.get(line, line)

    def import_time_scope(self, line: int) -> set[int]:
        """The lines whose tests can see a change to ``line``, which runs at import: the body of the function it
        decorates or defines a default of, or every function body that uses a name it defines (for a line in a
        class body: the class's name too). Empty if the module itself uses none of them."""
        stmt = next((s for s in self.tree.body if s.lineno <= line <= s.end_lineno), None)
        names: set[str] = set()
        while stmt is not None:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return set(range(stmt.body[0].lineno, stmt.end_lineno + 1))
            names |= _defined_names(stmt)
            if not isinstance(stmt, ast.ClassDef):
                break
            stmt = next((s for s in stmt.body if s.lineno <= line <= s.end_lineno), None)
        return {n for used, body in self.functions if used & names for n in body}


def _defined_names(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
    return {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}


def tests_for(mutant: Mutant, lines: dict[int, list[str]], shape: ModuleShape) -> list[str] | None:
    """The node ids that execute the mutant's line, None if nothing runs it. A line that runs at import (coverage
    gives it to whichever test imported the module first) gets the tests of its ``import_time_scope``, or, if the
    module does not use what it defines, every test that executes any line of the module."""
    line = mutant.line_number + 1
    nodes = lines.get(line) or lines.get(shape.statement_start(line))
    if not nodes:
        return None
    if line in shape.body:
        return nodes
    scope = {n for ln in shape.import_time_scope(line) for n in lines.get(ln, [])}
    return sorted(scope or {n for ns in lines.values() for n in ns})


def preload(work: Path, test_files: list[str]) -> None:
    """Import, once, every module that importing the test files pulls in but the project's own (torch, brevitas,
    onnx, FINN, ...), so that each forked child only imports vidconv_edge and the tests."""
    os.environ["OMP_NUM_THREADS"] = "1"
    probe = (
        "import sys, importlib\n"
        f"sys.path[:0] = [{str(work)!r}, {str(work / 'tests')!r}]\n"
        f"for f in {test_files!r}: importlib.import_module(f.split('/')[-1][:-3])\n"
        "own = ('vidconv_edge', 'test_', 'conftest', 'timm_compat', '__main__')\n"
        "print(' '.join(m for m in sys.modules if not m.startswith(own)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(work)}
    names = subprocess.run([sys.executable, "-c", probe], cwd=work, env=env, capture_output=True, text=True).stdout
    import torch

    torch.set_num_threads(1)
    for name in names.split():
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a module that cannot be imported twice is imported by the child
            pass


def forget_bytecode(work: Path, module: str) -> None:
    """Remove the module's cached bytecode: a mutant of the same size written within the same second as the
    cache would otherwise run stale code. Every other module keeps its cache between children."""
    path = work / module
    for pyc in path.parent.glob(f"__pycache__/{path.stem}.*.pyc"):
        pyc.unlink()


def start(work: Path, nodes: list[str]) -> int:
    """Fork a child that runs ``nodes`` with pytest in ``work``; its exit status is pytest's."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.chdir(work)
        sys.path.insert(0, str(work))
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # no xdist, cov, hypothesis: ~1 s each child
        import pytest

        code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--assert=plain", "-p", "xdist.plugin", "-m", "not slow",
                            *nodes])
        os._exit(int(code))
    except BaseException:  # noqa: BLE001 - the child must never return into the parent's loop
        os._exit(99)


def run(args: argparse.Namespace) -> None:
    targets = [m for t in args.modules for m in modules_of(t)]
    groups = {t: TESTS[next(k for k in TESTS if t == k or t.startswith(k + "/"))] for t in targets}
    results_path = Path(args.results)
    done = {}
    if results_path.exists():
        for row in map(json.loads, results_path.read_text().splitlines()):
            done[row["key"]] = row
    again = {k for k, r in done.items() if r["status"] != "killed"}
    if args.survivors:  # run the results' survivors again (e.g. with new tests), and nothing else
        done = {k: r for k, r in done.items() if k not in again}
        results_path.write_text("".join(json.dumps(r) + "\n" for r in done.values()))
    works = [scratch_copy() for _ in range(args.jobs)]
    try:
        coverage_by_files: dict[tuple, tuple] = {}
        for files in {tuple(g) for g in groups.values()}:
            mods = [t for t in targets if tuple(groups[t]) == files]
            print(f"baseline: {len(files)} test files under coverage for {len(mods)} modules", flush=True)
            coverage_by_files[files] = baseline(works[0], list(files), mods)
        preload(works[0], sorted({f for files in coverage_by_files for f in files}))
        for files, (_, seconds) in coverage_by_files.items():  # the forked runner passes on the unmutated tree
            status = os.waitpid(start(works[0], sorted(seconds)), 0)[1]
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f"mutation.py: the forked runner fails on the unmutated tree ({', '.join(files)})")
        queue = []
        for module in targets:
            lines, seconds = coverage_by_files[tuple(groups[module])]
            shape = ModuleShape(module)
            mutants = list_mutants(module)
            if args.sample < 1:
                rng = random.Random(f"{args.seed}:{module}")  # per module: the same sample whatever else is run
                mutants = sorted(rng.sample(mutants, min(len(mutants), max(1, round(args.sample * len(mutants))))),
                                 key=lambda m: (m.line_number, m.index))
            for mutant in mutants:
                if mutant.key in done or (args.survivors and mutant.key not in again):
                    continue
                nodes = tests_for(mutant, lines[module], shape)
                if nodes is not None:
                    nodes = sorted(nodes, key=lambda n: seconds.get(n, 0.0))
                files = {n.split("::")[0] for n in nodes or []}  # module fixtures count for the file's first test
                budget = 10 * sum(t for n, t in seconds.items() if n.split("::")[0] in files) + 120
                queue.append((mutant, nodes, budget))
        random.Random(args.seed).shuffle(queue)  # a run stopped early is still a random sample of the mutants
        print(f"{len(queue)} mutants to run ({len(done)} already in {results_path})", flush=True)
        running: dict[int, tuple] = {}
        free = list(works)
        with results_path.open("a") as out:
            while queue or running:
                while queue and free:
                    mutant, nodes, budget = queue.pop(0)
                    new = mutated_source(mutant)
                    row = {"key": mutant.key, "module": mutant.module, "diff": diff_line(mutant, new)}
                    if nodes is None or not compiles(new):
                        row.update(seconds=0.0, **({"status": "survived", "reason": "no test executes this line"}
                                                   if nodes is None else {"status": "killed", "reason": "does not compile"}))
                        out.write(json.dumps(row) + "\n")
                        continue
                    work = free.pop()
                    (work / mutant.module).write_text(new)
                    forget_bytecode(work, mutant.module)
                    running[start(work, nodes)] = (mutant, row, work, time.monotonic(), budget)
                pid, status = os.waitpid(-1, os.WNOHANG) if running else (0, 0)
                if not pid:
                    for child, (mutant, row, work, t0, budget) in list(running.items()):
                        if time.monotonic() - t0 > budget:
                            os.killpg(child, signal.SIGKILL)
                    time.sleep(0.05)
                    continue
                mutant, row, work, t0, budget = running.pop(pid)
                elapsed = time.monotonic() - t0
                code = os.waitstatus_to_exitcode(status)
                row.update(status=STATUS.get(code, "killed" if code < 0 else "error"), seconds=round(elapsed, 2),
                           reason="timeout" if code < 0 else f"pytest exit {code}")
                out.write(json.dumps(row) + "\n")
                out.flush()
                shutil.copy(ROOT / mutant.module, work / mutant.module)
                forget_bytecode(work, mutant.module)
                free.append(work)
                done[row["key"]] = row
                n = len(done)
                if n % 25 == 0:
                    print(f"{n} mutants run, {time.strftime('%H:%M:%S')}", flush=True)
    finally:
        for work in works:
            shutil.rmtree(work, ignore_errors=True)
    summary(results_path, targets)


def summary(results_path: Path, targets: list[str]) -> None:
    rows = [json.loads(r) for r in results_path.read_text().splitlines()]
    rows = [r for r in rows if r["module"] in targets]
    killed_all = 0
    for module in targets:
        mine = [r for r in rows if r["module"] == module]
        killed = sum(r["status"] == "killed" for r in mine)
        killed_all += killed
        errors = [r for r in mine if r["status"] == "error"]
        print(f"{module}: {killed} of {len(mine)} killed" + (f", {len(errors)} runner errors" if errors else ""))
        for r in mine:
            if r["status"] != "killed":
                print(f"    {r['key']}  {r['diff']}  ({r['status']}: {r['reason']})")
    if rows:
        from vidconv_edge.train.metrics import wilson_interval

        lo, hi = wilson_interval(killed_all, len(rows))
        print(f"total: {killed_all} of {len(rows)} killed ({100 * killed_all / len(rows):.1f}%, "
              f"95% Wilson interval {100 * lo:.1f}-{100 * hi:.1f}% if these mutants are a random sample)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(TESTS), help="modules or folders (default: all listed)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (one scratch copy each)")
    parser.add_argument("--results", default="mutation.jsonl", help="JSON-lines results, appended (resumable)")
    parser.add_argument("--sample", type=float, default=1.0,
                        help="run this share of each module's mutants, drawn at random (--seed); 1 = all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--survivors", action="store_true",
                        help="run only the mutants that did not die in --results again (e.g. after adding tests)")
    parser.add_argument("--summary", action="store_true", help="only print the summary of the results file")
    args = parser.parse_args()
    for target in args.modules:
        if not any(target == k or target.startswith(k + "/") for k in TESTS) or not (ROOT / target).exists():
            parser.error(f"no tests listed for {target} (known: {', '.join(TESTS)})")
    if args.summary:
        summary(Path(args.results), [m for t in args.modules for m in modules_of(t)])
    else:
        run(args)


if __name__ == "__main__":
    main()
