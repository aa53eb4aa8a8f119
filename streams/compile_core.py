"""Compile the rules core's hot modules with mypyc, in place; refuse a stale build.

    python -m streams.compile_core              # build (again)
    python -m streams.compile_core --if-needed  # `make compile`: make test, run, bench do it
    python -m streams.compile_core --clean      # back to the sources alone

The modules every message runs through are plain, fully typed Python; mypyc turns them into
C extensions that Python imports instead of the sources (a fifth fewer instructions per
event: docs/benchmarks.md). Everything works uncompiled too: without a C compiler or mypyc
the build says so, leaves no extension behind, and the sources run.

An extension built from older sources would run old rules while the sources say otherwise,
so `streams.rules` refuses to import when one is older than any source of the rules or of
the contracts it was compiled against (`refuse_stale`).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
RULES = PACKAGE / "rules"
CORE_MODULES = ("lead", "shard", "engine", "account", "referee", "referrer", "identity")
# What compiled code depends on: its own sources, the rest of the core, and the records.
SOURCES = (RULES, PACKAGE / "contracts")


class StaleBuildError(ImportError):
    """A compiled module is older than the sources it was built from."""


def compiled_files() -> list[Path]:
    """Every extension in the core's folder: the compiled modules and their mypyc helpers,
    including any left from a module no longer compiled (it would still be imported)."""
    # The suffixes overlap (".cpython-311-x86_64-linux-gnu.so" also ends in ".so").
    return sorted({path for suffix in EXTENSION_SUFFIXES for path in RULES.glob(f"*{suffix}")})


def stale_files() -> list[Path]:
    """Compiled files older than the newest source they depend on."""
    built = compiled_files()
    if not built:
        return []
    newest = max(path.stat().st_mtime for tree in SOURCES for path in tree.glob("*.py"))
    return [path for path in built if path.stat().st_mtime < newest]


def refuse_stale() -> None:
    """Raise StaleBuildError if a compiled module would hide a later edit of the sources."""
    stale = stale_files()
    if stale:
        names = ", ".join(path.name for path in stale)
        raise StaleBuildError(
            f"the compiled rules core is older than its sources ({names}): run `make compile`"
            " to rebuild it, or `python -m streams.compile_core --clean` to run the sources"
        )


def clean() -> int:
    """Remove the compiled modules; returns how many files went."""
    files = compiled_files()
    for path in files:
        path.unlink()
    return len(files)


def compile_core() -> bool:
    """Build the extensions next to their sources; on any failure leave none behind."""
    clean()
    try:
        # Build tools, imported only when building.
        from mypyc.build import mypycify
        from setuptools import setup  # type: ignore[import-untyped, unused-ignore]
    except ImportError as error:
        print(f"compile_core: not compiled, the sources run ({error})", file=sys.stderr)
        return False
    root = PACKAGE.parent
    build = root / "build"
    cwd = Path.cwd()
    os.chdir(root)  # mypyc and setuptools work with paths relative to the project
    try:
        modules = [f"streams/rules/{name}.py" for name in CORE_MODULES]
        setup(
            name="referral-rewards-core",
            packages=[],
            py_modules=[],
            ext_modules=mypycify(
                modules, opt_level="3", separate=True, target_dir=str(build / "mypyc")
            ),
            script_args=["-q", "build_ext", "--inplace", "--build-temp", str(build / "temp")],
        )
    except (Exception, SystemExit) as error:  # a compiler error ends setup() with SystemExit
        clean()
        print(f"compile_core: not compiled, the sources run ({error})", file=sys.stderr)
        return False
    finally:
        os.chdir(cwd)
    # setuptools copies an unchanged extension with the time it was first built; it was
    # just generated from the current sources, so it is as new as they are.
    for path in compiled_files():
        path.touch()
    print(f"compile_core: {len(compiled_files())} files in {RULES.relative_to(root)}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    parser.add_argument(
        "--if-needed", action="store_true", help="only when missing or older than the sources"
    )
    args = parser.parse_args(argv)
    if args.clean:
        print(f"compile_core: removed {clean()} files")
        return 0
    if args.if_needed and compiled_files() and not stale_files():
        return 0
    compile_core()
    return 0  # uncompiled is slower, never wrong: a failed build does not fail the caller


if __name__ == "__main__":
    sys.exit(main())
