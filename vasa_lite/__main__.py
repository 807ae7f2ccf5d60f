import sys

from vasa_lite.cli import main

sys.exit(main())
