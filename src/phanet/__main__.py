import sys

from phanet.cli import main

sys.exit(main())
