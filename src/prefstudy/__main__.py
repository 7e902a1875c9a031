import sys

from prefstudy.cli import main

sys.exit(main())
