"""One module per `dynamowave` subcommand, each with `add_arguments(parser)` and `run(args) -> int`."""
