# SPDX-License-Identifier: MIT
import sys

from .crawl import main

sys.exit(main())
