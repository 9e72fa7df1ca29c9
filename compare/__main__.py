import sys

from compare.cli import main

if __name__ == "__main__":  # not when a spawned bench worker imports this module
    sys.exit(main())
