"""How much issue 14 ("one coherent library") changed the size of the package, measured, not estimated.

Every first-parent commit of main since 3bfd628 (the commit before issue 14's work) is one issue's: a merge by its
branch name (``issue12``, ``issue-13``, ``melbo-basis`` = 13, ``issue14cli`` = 14), the rest issue 14 unless listed in
``OTHER``. A commit's net change is the lines of ``src/steerscope/**/*.py`` it adds minus those it deletes, against
its first parent, so a merge carries its whole branch and code moved between files nets out. Summing per issue gives
each issue's net change exactly; issue 14's is what "shorter, not longer (new features from other issues aside)"
asks about. Counted three ways: physical lines; code lines (no blank lines, comments or docstrings); and code
tokens, which do not change when code is only rewrapped.

    python tools/line_counts.py            # prints the table, writes bench/results/line_counts.json
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import re
import subprocess
import tokenize
from collections import Counter
from pathlib import Path

BEFORE = "3bfd628"
# first-parent commits of main since BEFORE that are other issues' work (merges go by their branch name)
OTHER = {"ca611a6": "positions", "690b9d8": "11", "b975663": "11", "c3e9f63": "11", "cf1a237": "11", "b214fe3": "11",
         "87d059d": "11", "11dbfbf": "11", "3f4d9ce": "11", "616afcd": "11"}
KINDS = ("lines", "code_lines", "code_tokens")
MERGE_ISSUE = re.compile(r"issue[- ]?(\d+)|melbo-basis")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def code_size(src: str) -> tuple[int, int]:
    """(code lines, code tokens): lines holding code (not blank, not only a comment, not part of a docstring) and
    the tokens on them (names, operators, literals; comments, docstrings and layout left out). Tokens do not
    change when a statement is wrapped differently, so they say whether code got smaller or only reflowed."""
    docs: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body and \
                isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and \
                isinstance(body[0].value.value, str):
            docs.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines: set[int] = set()
    tokens = 0
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in skip and tok.start[0] not in docs:
            lines.update(range(tok.start[0], tok.end[0] + 1))
            tokens += 1
    return len(lines), tokens


def size(rev: str, path: str) -> tuple[int, int, int]:
    """(physical lines, code lines, code tokens) of ``path`` at ``rev``; zeros where it does not exist."""
    try:
        src = git("show", f"{rev}:{path}")
    except subprocess.CalledProcessError:
        return 0, 0, 0
    return (len(src.splitlines()), *code_size(src))


def issue_of(subject: str, sha: str, merge: bool) -> str:
    if not merge:
        return OTHER.get(sha[:7], "14")
    match = MERGE_ISSUE.search(subject)
    return "13" if match and match.group(1) is None else (match.group(1) if match else "14")


def package_size(rev: str) -> list[int]:
    paths = [p for p in git("ls-tree", "-r", "--name-only", rev, "src/steerscope").split() if p.endswith(".py")]
    return [sum(column) for column in zip(*(size(rev, p) for p in paths))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--out", default="bench/results/line_counts.json")
    args = parser.parse_args()
    net = {kind: Counter() for kind in KINDS}
    for entry in git("log", "--first-parent", "--format=%H %P\t%s", f"{BEFORE}..{args.rev}").splitlines():
        head, subject = entry.split("\t", 1)
        sha, *parents = head.split()
        issue = issue_of(subject, sha, len(parents) > 1)
        changed = git("diff", "--name-only", "--no-renames", parents[0], sha, "--", "src/steerscope").split()
        for path in (p for p in changed if p.endswith(".py")):
            for kind, old, new in zip(KINDS, size(parents[0], path), size(sha, path)):
                net[kind][issue] += new - old
    before, now = package_size(BEFORE), package_size(args.rev)
    issues = sorted(net["lines"])
    result = {"before_rev": BEFORE, "rev": git("rev-parse", "--short", args.rev).strip(),
              "package_before": dict(zip(KINDS, before)), "package_now": dict(zip(KINDS, now)),
              "net_by_issue": {i: {kind: net[kind][i] for kind in KINDS} for i in issues}}
    for kind, b, n in zip(KINDS, before, now):  # the per-issue changes add up to the package's
        assert sum(net[kind].values()) == n - b, kind
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"src/steerscope at {BEFORE} -> {result['rev']}: " + ", ".join(f"{b} -> {n} {kind}" for kind, b, n in
                                                                         zip(KINDS, before, now)))
    for i in issues:
        print(f"  issue {i:>9}: " + ", ".join(f"{net[kind][i]:+6d} {kind}" for kind in KINDS))


if __name__ == "__main__":
    main()
