#!/usr/bin/env python3
"""Trims a fuzz corpus to at most LIMIT files by greedy set cover over coverage edges.

libFuzzer's merges keep every file that adds any feature, which for the admission target
(all of k8s-openapi's PodSpec deserializers are instrumented) still leaves ~900 files. This
measures each file's edges alone (one `-merge=1` run per file, edges only) and keeps, after
the KEEP files, the file adding the most uncovered edges until LIMIT files or no gain.

usage: trim_corpus.py FUZZ_BINARY SRC_DIR DST_DIR LIMIT [KEEP_FILE_NAME...]
"""
import os
import shutil
import subprocess
import sys
import tempfile


def edges(binary, path, work):
    src, out, ctl = (os.path.join(work, n) for n in ("in", "out", "ctl"))
    for d in (src, out):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    if os.path.exists(ctl):
        os.remove(ctl)
    shutil.copy(path, src)
    subprocess.run(
        [binary, "-merge=1", "-use_counters=0", "-timeout=10", "-merge_control_file=" + ctl, out, src],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    found = set()
    with open(ctl) as f:
        for line in f:
            if line.startswith("COV "):
                found.update(line.split()[2:])
    return found


def main():
    binary, src, dst, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    keep = sys.argv[5:]
    work = tempfile.mkdtemp()
    cov = {f: edges(binary, os.path.join(src, f), work) for f in sorted(os.listdir(src))}
    shutil.rmtree(work)
    total = set().union(*cov.values())
    chosen, covered = [], set()
    for f in keep:
        if f in cov:
            chosen.append(f)
            covered |= cov[f]
    while len(chosen) < limit:
        rest = [f for f in cov if f not in chosen]
        if not rest:
            break
        best = max(rest, key=lambda f: (len(cov[f] - covered), -os.path.getsize(os.path.join(src, f))))
        if not cov[best] - covered:
            break
        chosen.append(best)
        covered |= cov[best]
    os.makedirs(dst, exist_ok=True)
    for f in chosen:
        shutil.copy(os.path.join(src, f), dst)
    print(f"{len(chosen)} files cover {len(covered)}/{len(total)} edges ({100 * len(covered) / max(len(total), 1):.1f}%)")


if __name__ == "__main__":
    main()
