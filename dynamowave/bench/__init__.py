"""`dynamowave bench`: this project's fan-out against the AWS tutorial's design and the ceiling.

* server.py: one system per process (the local runtime, metered; or websockets' broadcast()).
* tutorial.py: the AWS tutorial's sendmessage as a handler the runtime can route to.
* meter.py: AWS requests and DynamoDB capacity units counted from the real boto3 calls.
* clients.py: the room's member sockets, timing every delivery.
* runner.py: one system after another, results; prices.py: the dated price table.
"""
