"""Command line: ``python -m skbilevel demo``."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="skbilevel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="tune ridge on bundled data beside scikit-learn")
    demo.add_argument("--plot", default="skbilevel_demo.png",
                      help="where to write the trajectory PNG ('' to skip)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(plot_path=args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
