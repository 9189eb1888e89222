"""The local runtime behind `dynamowave serve`: stands in for API Gateway, Lambda and the event sources.

Modules (each importable on its own so that start-up stays fast):

* ``config``: `RuntimeConfig`, every knob of the runtime with AWS's defaults.
* ``moto_backend`` / ``provisioning``: the embedded moto server and the tables and queues.
* ``lambda_runner``: handlers run as Lambda runs them (context, timeout, concurrency).
* ``gateway`` / ``management_api``: the WebSocket API and its ``@connections`` API on one port.
* ``event_sources``: the SQS event source mapping and the janitor's schedule.
* ``faults``: fault injection for tests and demos.
* ``tokens``: the dev secret and token minting.
* ``runtime``: wires everything together.
"""
