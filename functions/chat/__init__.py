"""The chat domain shared by every function.

Modules: `protocol` (frames, validation, errors), `settings` (typed configuration parsed once),
`schema` (table and queue definitions: the single source for CDK and the local runtime),
`store` and `changes` (DynamoDB), `queue` (SQS), `management_client` (API Gateway Management API),
`review` (the review function's Lambda client), `auth` (JWT), `service` (the chat actions),
`delivery` (fan-out and pruning). Only `deps` (the client factories), store, changes, queue,
management_client, review and `secrets` (the secret loader) import boto3 or botocore.
"""
