from quaero.cli import main

raise SystemExit(main())
