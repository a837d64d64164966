from tcmbench.cli import main

raise SystemExit(main())
