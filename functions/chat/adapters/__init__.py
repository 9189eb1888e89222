"""The edges (docs/architecture.md, "The layers"): DynamoDB, SQS, the Management API, the
review Lambda, the secret, and the in-memory implementations of the domain's ports."""
