"""`python -m installers build ...` (see installers/build.py) and
`python -m installers demo-packages OUT_DIR --key KEY` (see installers/demo_packages.py)."""
import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "build":
        from installers.build import main as build_main
        return build_main(rest)
    if command == "demo-packages":
        from installers.demo_packages import main as demo_main
        return demo_main(rest)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
