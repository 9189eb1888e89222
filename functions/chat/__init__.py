"""The chat code shared by every function (docs/architecture.md).

At the top, the contract: `protocol` (frames, validation, errors), `settings` (typed
configuration parsed once), `schema` (tables, queues, routes: the single source for CDK and the
local runtime), `jobs`, `lifecycle`, `auth`, `clock`, `retry`, `lease`, `observability`; and
`deps`, which builds everything once per process. `domain/` holds the rules and their ports,
`adapters/` the AWS clients (the only modules, with deps, that import boto3 or botocore) and the
in-memory fakes.
"""
