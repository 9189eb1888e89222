"""The one test harness: what every test folder, the load test and the benchmark start and wait on.

* `serve`: `dynamowave serve --port 0` as a child process (output to a file), ready when it
  prints its URLs, stopped with SIGTERM; the environment every local child gets.
* `aws`: embedded moto with the stack's tables and queues (`functions.chat.schema`), the
  functions' environment as the stack sets it, and Lambda's `context`.
* `waits`: polling with a deadline, and the next matching frame on a WebSocket.

Shipped with the package (not under tests/) because `loadtests/` and `dynamowave bench` use it
too; nothing in `functions/` or the runtime imports it.
"""
