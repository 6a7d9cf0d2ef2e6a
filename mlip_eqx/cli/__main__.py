"""``python -m mlip_eqx.cli``: the ``mlip-eqx`` command."""

import sys

from mlip_eqx.cli import main

sys.exit(main())
