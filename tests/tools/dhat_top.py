#!/usr/bin/env python3
"""The allocation sites holding the most memory when a dhat heap profile
ended (what was never freed), with the first frames of Tenantry's own code.

    python3 tests/tools/dhat_top.py PROFILE.json [--top N] [--frames N]

A profile comes from `bench-soak --profile` (see its docs). dhat's own
viewer (dh_view.html, from valgrind) shows the same data interactively.
"""
import argparse
import json

# Frames that say nothing about who allocated: the profiler, the standard
# library's allocation and collections (by source file).
NOISE = ("dhat-", "alloc/src/", "core/src/", "std/src/", "hashbrown-")


def interesting(frame):
    if frame == "[root]":
        return False
    location = frame.rsplit(" (", 1)[-1]
    return not location.startswith(NOISE)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()
    with open(args.profile) as f:
        data = json.load(f)
    frames = data["ftbl"]
    points = sorted(data["pps"], key=lambda p: p.get("eb", 0), reverse=True)
    total_end = sum(p.get("eb", 0) for p in points)
    total_alloc = sum(p.get("tb", 0) for p in points)
    print(f"live at the end: {total_end / 1048576:.1f} MiB in "
          f"{sum(p.get('ebk', 0) for p in points)} blocks; "
          f"allocated in all: {total_alloc / 1048576:.1f} MiB in "
          f"{sum(p.get('tbk', 0) for p in points)} blocks\n")
    for rank, point in enumerate(points[: args.top], 1):
        stack = [frames[i] for i in point["fs"]]
        own = [f for f in stack if interesting(f)][: args.frames]
        print(f"{rank:>2}. {point.get('eb', 0) / 1048576:8.2f} MiB live in "
              f"{point.get('ebk', 0):>9} blocks "
              f"({point.get('tbk', 0)} allocated over the run)")
        for frame in own:
            print(f"      {frame.split(': ', 1)[-1][:160]}")
        print()


if __name__ == "__main__":
    main()
