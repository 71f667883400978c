#!/usr/bin/env python3
"""Rebuild the generated tables under crates/dlp/data/ from public-domain sources.

    pip download --no-deps -d /tmp/src simple-icd-10-cm names
    (unpack both) then:
    build_tables.py --icd CODE_LIST.txt --names-dir names-0.3.0/names --out crates/dlp/data

Sources:
- ICD-10-CM code list (CMS/NCHS, public domain), as shipped by the simple-icd-10-cm package
  (data/code-list-April-2026.txt). Every category and code, not only billable leaves.
- First and last names from the 1990 US Census (public domain), as shipped by the
  `names` package (dist.female.first, dist.male.first, dist.all.last).

icd10cm.txt.zz is zlib-compressed, one category a line: `E11 0 00 01 1 10 ...` where each
subcode after the category is front-coded against the previous one: a digit telling how
many leading characters it shares with the previous suffix, then the rest.
"""
import argparse
import os
import re
import zlib


def icd(code_list, out):
    codes = [l.strip() for l in open(code_list)
             if re.fullmatch(r"[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}", l.strip())]
    cats = {}
    for c in codes:
        cats.setdefault(c[:3], []).append(c[3:])
    lines = []
    for cat, suffixes in cats.items():
        prev, parts = "", []
        for s in suffixes:
            if not s:
                continue
            n = 0
            while n < len(prev) and n < len(s) and prev[n] == s[n]:
                n += 1
            parts.append(f"{n}{s[n:]}")
            prev = s
        lines.append(" ".join([cat] + parts))
    with open(os.path.join(out, "icd10cm.txt.zz"), "wb") as fh:
        fh.write(zlib.compress(("\n".join(lines) + "\n").encode(), 9))
    print(f"icd10cm: {len(codes)} codes in {len(cats)} categories")


def names(src, out, last_count):
    def load(f):
        return [l.split()[0].lower() for l in open(os.path.join(src, f)) if l.strip()]
    first = sorted(set(load("dist.female.first")) | set(load("dist.male.first")))
    last = load("dist.all.last")[:last_count]
    with open(os.path.join(out, "first_names_census.txt"), "w") as fh:
        fh.write("# 1990 US Census first names (public domain), lower case\n" + "\n".join(first) + "\n")
    with open(os.path.join(out, "last_names_census.txt"), "w") as fh:
        fh.write(f"# 1990 US Census surnames, the {last_count} most frequent (public domain), lower case\n"
                 + "\n".join(last) + "\n")
    print(f"names: {len(first)} first, {len(last)} last")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--icd", required=True)
    ap.add_argument("--names-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--last-count", type=int, default=8000)
    a = ap.parse_args()
    icd(a.icd, a.out)
    names(a.names_dir, a.out, a.last_count)
