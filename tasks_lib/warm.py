"""`python -m tasks_lib.warm`: the warm engine's documented command (work pools are configured with it); see ops/warm/."""

if __name__ == "__main__":
    import sys

    from tasks_lib.ops.warm import main

    sys.exit(main())
