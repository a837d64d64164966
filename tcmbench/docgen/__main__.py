"""``python -m tcmbench.docgen``."""

from tcmbench.docgen import main

raise SystemExit(main())
