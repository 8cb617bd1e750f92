"""`python -m tasks_lib.ops.warm`: the same command as `python -m tasks_lib.warm` (see the package's docstring)."""

if __name__ == "__main__":
    import sys

    from tasks_lib.ops.warm import main

    sys.exit(main())
