"""Load tests: a locust user over a real WebSocket (locustfile.py) and `make loadtest` (run.py)."""
