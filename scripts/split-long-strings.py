#!/usr/bin/env python3
"""Splits string literals that run past the column limit into `"first part "` + `"rest"` on the next line.

    python3 scripts/split-long-strings.py [--limit 120] FILE.swift ...

swift-format breaks code but never a string literal; this does the rest. A literal is split at a space
outside any interpolation, the continuation indented four columns past the line's own indentation.
Multi-line (\"\"\") and raw (#\"...\"#) literals are left alone. Prints the lines it could not bring under
the limit."""
import re
import sys


def literal_positions(line, start):
    """Positions of the characters of the literal opening at `start` that stand outside any interpolation and
    escape, up to and including its closing quote (or to the end of the line when it has none)."""
    i = start + 1
    depth = 0
    while i < len(line):
        if line[i] == '\\' and i + 1 < len(line) and line[i + 1] == '(':
            depth += 1
            i += 2
            continue
        if depth > 0:
            if line[i] == '(':
                depth += 1
            elif line[i] == ')':
                depth -= 1
            elif line[i] == '"':  # a literal inside an interpolation: skip it
                i += 1
                while i < len(line) and line[i] != '"':
                    i += 2 if line[i] == '\\' else 1
            i += 1
            continue
        if line[i] == '\\':
            i += 2
            continue
        yield i
        if line[i] == '"':
            return
        i += 1


def literals(line):
    """(start, end) of each plain one-line string literal: start at the opening quote, end after the closing one."""
    spans = []
    i = 0
    while i < len(line):
        c = line[i]
        if line.startswith('//', i):
            break
        if c == '#' and i + 1 < len(line) and line[i + 1] == '"':
            return spans + [None]  # raw string: leave the line alone
        if line.startswith('"""', i):
            return spans + [None]
        if c == '"':
            start = i
            i = len(line)
            for position in literal_positions(line, start):
                if line[position] == '"':
                    i = position
            spans.append((start, i + 1))
        i += 1
    return spans


def split_points(line, start, end):
    """Positions of spaces inside the literal that are outside interpolations (split after the space)."""
    return [p + 1 for p in literal_positions(line, start) if p < end - 1 and line[p] == ' ']


def fix(line, limit):
    """The line as one or more lines, literals split so each fits when it can."""
    out = []
    indent = len(line) - len(line.lstrip(' '))
    while len(line) > limit:
        spans = literals(line)
        if not spans or spans[-1] is None:
            break
        crossing = [s for s in spans if s[1] > limit and s[0] < limit - 10]
        if not crossing:
            break
        start, end = crossing[0]
        points = [p for p in split_points(line, start, end) if p <= limit - 2 and p > start + 10]
        if not points:
            break
        cut = points[-1]
        out.append(line[:cut] + '"')
        line = ' ' * (indent + 4) + '+ "' + line[cut:]
    out.append(line)
    return out


def main():
    args = sys.argv[1:]
    limit = 120
    if args[:1] == ['--limit']:
        limit = int(args[1])
        args = args[2:]
    for path in args:
        text = open(path).read().split('\n')
        result = []
        in_multiline = False
        for n, line in enumerate(text, 1):
            if line.count('"""') % 2 == 1:
                in_multiline = not in_multiline
                result.append(line)
                continue
            if in_multiline or len(line) <= limit:
                result.append(line)
                continue
            fixed = fix(line, limit)
            result.extend(fixed)
            for piece in fixed:
                if len(piece) > limit:
                    print(f'{path}:{n}: still {len(piece)} columns')
        open(path, 'w').write('\n'.join(result))


if __name__ == '__main__':
    main()
