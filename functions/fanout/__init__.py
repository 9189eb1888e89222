"""The fanout Lambda function."""
