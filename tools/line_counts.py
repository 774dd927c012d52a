"""How much issue 14 ("one coherent library") changed the size of the package, measured, not estimated.

Every first-parent commit of main since 3bfd628 (the commit before issue 14's work) is one issue's: a merge by its
branch name (``issue12``, ``issue-13``, ``melbo-basis`` = 13, ``issue14cli`` = 14), the rest issue 14 unless listed in
``OTHER``. A commit's net change is the lines of ``src/steerscope/**/*.py`` it adds minus those it deletes, against
its first parent, so a merge carries its whole branch and code moved between files nets out. Summing per issue gives
each issue's net change exactly; issue 14's is what "shorter, not longer (new features from other issues aside)"
asks about. Counted twice: physical lines, and code lines (no blank lines, comments or docstrings).

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
MERGE_ISSUE = re.compile(r"issue[- ]?(\d+)|melbo-basis")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def code_lines(src: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    docs: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body and \
                isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and \
                isinstance(body[0].value.value, str):
            docs.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines: set[int] = set()
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in skip:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docs)
    return len(lines)


def size(rev: str, path: str) -> tuple[int, int]:
    """(physical lines, code lines) of ``path`` at ``rev``; (0, 0) where it does not exist."""
    try:
        src = git("show", f"{rev}:{path}")
    except subprocess.CalledProcessError:
        return 0, 0
    return len(src.splitlines()), code_lines(src)


def issue_of(subject: str, sha: str, merge: bool) -> str:
    if not merge:
        return OTHER.get(sha[:7], "14")
    match = MERGE_ISSUE.search(subject)
    return "13" if match and match.group(1) is None else (match.group(1) if match else "14")


def package_size(rev: str) -> tuple[int, int]:
    paths = [p for p in git("ls-tree", "-r", "--name-only", rev, "src/steerscope").split() if p.endswith(".py")]
    sizes = [size(rev, p) for p in paths]
    return sum(s[0] for s in sizes), sum(s[1] for s in sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--out", default="bench/results/line_counts.json")
    args = parser.parse_args()
    lines, code = Counter(), Counter()
    for entry in git("log", "--first-parent", "--format=%H %P\t%s", f"{BEFORE}..{args.rev}").splitlines():
        head, subject = entry.split("\t", 1)
        sha, *parents = head.split()
        issue = issue_of(subject, sha, len(parents) > 1)
        changed = git("diff", "--name-only", "--no-renames", parents[0], sha, "--", "src/steerscope").split()
        for path in (p for p in changed if p.endswith(".py")):
            (old_lines, old_code), (new_lines, new_code) = size(parents[0], path), size(sha, path)
            lines[issue] += new_lines - old_lines
            code[issue] += new_code - old_code
    before, now = package_size(BEFORE), package_size(args.rev)
    result = {"before_rev": BEFORE, "rev": git("rev-parse", "--short", args.rev).strip(),
              "package_before": {"lines": before[0], "code_lines": before[1]},
              "package_now": {"lines": now[0], "code_lines": now[1]},
              "net_by_issue": {k: {"lines": lines[k], "code_lines": code[k]} for k in sorted(lines)}}
    assert sum(lines.values()) == now[0] - before[0] and sum(code.values()) == now[1] - before[1]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"src/steerscope: {before[0]} lines ({before[1]} code) at {BEFORE} -> {now[0]} ({now[1]}) at {result['rev']}")
    for issue in sorted(lines):
        print(f"  issue {issue:>9}: {lines[issue]:+6d} lines, {code[issue]:+6d} code lines")


if __name__ == "__main__":
    main()
