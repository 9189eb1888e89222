"""The chat domain shared by every function.

Modules: `protocol` (frames, validation, errors), `settings` (typed configuration parsed once),
`schema` (table and queue definitions: the single source for CDK and the local runtime),
`store` (DynamoDB), `queue` (SQS), `gateway` (API Gateway Management API), `auth` (JWT),
`service` (the chat actions), `delivery` (fan-out and pruning). Only store, queue, gateway and
auth's secret loader import boto3.
"""
