"""`python -m blockprune_pl.export <run dir or .ckpt> --format F [--out folder]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from blockprune_pl.export import formats
from blockprune_pl.export.formats import FORMATS, export


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m blockprune_pl.export", description=formats.__doc__
    )
    parser.add_argument("run", help="a run dir (with metrics.json and checkpoints/) or a .ckpt")
    parser.add_argument("--format", default="hf", choices=FORMATS)
    parser.add_argument("--out", help="destination folder (default: <run>/export_<format>)")
    args = parser.parse_args(argv)
    run = Path(args.run)
    base = run if run.is_dir() else run.parent.parent
    out = export(run, args.out or base / f"export_{args.format}", args.format)
    print(f"exported {args.format}: {out}")


if __name__ == "__main__":
    main()
