#!/usr/bin/env python3
"""Print the code block that follows `<!-- test: NAME -->` in a Markdown file.

The README's Operations section marks each SQL block a test runs, so that what the README shows
is what the test ran: usage `readme_block.py README.md NAME`.
"""
import sys

path, name = sys.argv[1], sys.argv[2]
lines = open(path, encoding="utf-8").read().splitlines()
marker = f"<!-- test: {name} -->"
try:
    start = lines.index(marker)
except ValueError:
    sys.exit(f"{path}: no block marked {marker}")
i = start + 1
while i < len(lines) and not lines[i].startswith("```"):
    i += 1
if i == len(lines):
    sys.exit(f"{path}: no code block after {marker}")
j = i + 1
while j < len(lines) and not lines[j].startswith("```"):
    j += 1
print("\n".join(lines[i + 1 : j]))
