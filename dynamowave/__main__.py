"""`python -m dynamowave` runs the command line."""

from dynamowave.cli import main

raise SystemExit(main())
