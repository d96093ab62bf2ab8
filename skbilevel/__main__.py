"""Command line: ``python -m skbilevel demo``."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="skbilevel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="tune ridge, Lasso and logistic regression on "
                                        "bundled data beside scikit-learn")
    demo.add_argument("--plot", default="skbilevel_demo.png",
                      help="where to write the ridge trajectory PNG ('' to skip)")
    demo.add_argument("--part", choices=["all", "ridge", "sparse"], default="all",
                      help="ridge tuning, Lasso / logistic tuning, or both (default)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from . import _demo, _demo_sparse

        if args.part in ("all", "ridge"):
            _demo.run_demo(plot_path=args.plot)
        if args.part in ("all", "sparse"):
            _demo_sparse.run_sparse_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
