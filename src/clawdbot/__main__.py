import sys

from clawdbot.cli.main import main

sys.exit(main())
