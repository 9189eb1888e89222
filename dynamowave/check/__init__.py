"""`dynamowave check URL`: a conformance run of docs/protocol.md against any deployment.

:mod:`dynamowave.check.probe` is the WebSocket client the rows use, :mod:`dynamowave.check.rows`
registers one small async function per client-observable row, :mod:`dynamowave.check.runner`
runs them in order and prints the table.
"""
