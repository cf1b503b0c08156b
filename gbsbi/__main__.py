import sys

from gbsbi.cli import main

sys.exit(main())
